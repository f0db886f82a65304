"""Interrupted training loses nothing; checkpoints reload and train on.

The interruption test kills a training subprocess with a real SIGKILL in the
middle of an epoch, resumes it with `keras.callbacks.BackupAndRestore` and
compares the final weights with those of an uninterrupted run with the same
seed (tests/interruption_worker.py states the conditions this needs). With
dropout it does not, as docs/reliability.md says: Keras keeps no dropout
seed state in the backup. Checkpoints of
`keras.callbacks.ModelCheckpoint` reload and train on.
"""

import json
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

import keras_masknet
from tests.helpers import BACKEND
from tests.helpers import INTERRUPTION_WORKER
from tests.helpers import REPO
from tests.helpers import npz_arrays
from tests.helpers import run_interruption_worker
from tests.helpers import to_numpy

#: The in-process models train as one XLA program on JAX (eagerly, JAX
#: compiles every operation), as Keras' default does; eagerly elsewhere.
JIT = BACKEND == "jax"
#: Kill after batch 3 of epoch 2 (0-based) of 4 epochs of 8 batches.
KILL_EPOCH, KILL_BATCH = 2, 3


def _env(subprocess_env):
    return {**subprocess_env, "KERAS_BACKEND": BACKEND}


def _kill_at_marker(args, env, marker, timeout=600):
    """Start the worker, wait for `marker`, SIGKILL it; return its stderr."""
    proc = subprocess.Popen(
        [sys.executable, "-m", INTERRUPTION_WORKER, *map(str, args)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + timeout
    try:
        while not marker.exists():
            if proc.poll() is not None:
                _, err = proc.communicate()
                pytest.fail(f"worker exited before the marker:\n{err[-4000:]}")
            if time.monotonic() > deadline:
                pytest.fail("worker never reached the kill point")
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, err[-4000:])
    return err


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run(
    tmp_path, subprocess_env, uninterrupted_training
):
    env = _env(subprocess_env)
    # `full`, in a process of its own (tests/conftest.py).
    reference, reference_dir = uninterrupted_training
    run = tmp_path / "interrupted"
    _kill_at_marker(
        ["interrupt", run, "--kill-at", f"{KILL_EPOCH}:{KILL_BATCH}"],
        env,
        run / "marker",
    )
    assert (run / "marker").read_text().strip() == f"{KILL_EPOCH}:{KILL_BATCH}"
    # The backup holds the state after the last whole epoch.
    meta = json.loads((run / "backup" / "training_metadata.json").read_text())
    assert meta["epoch"] == KILL_EPOCH
    assert not (run / "interrupt_final.npz").exists()

    resumed = run_interruption_worker(["resume", run], env)
    # The resumed fit restarted the interrupted epoch, not epoch 0 ...
    assert resumed["first_epoch"] == KILL_EPOCH
    assert len(resumed["loss"]) == len(reference["loss"]) - KILL_EPOCH
    # ... from a fresh model whose weights the backup then replaced ...
    start = npz_arrays(run / "resume_initial.npz")
    want = npz_arrays(reference_dir / "full_final.npz")
    assert any(not np.array_equal(a, b) for a, b in zip(start, want))
    # ... and ended bit for bit where the uninterrupted run ended.
    got = npz_arrays(run / "resume_final.npz")
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    np.testing.assert_array_equal(
        resumed["loss"], reference["loss"][KILL_EPOCH:]
    )
    # BackupAndRestore deletes its backup once training completes.
    assert not (run / "backup").exists()


# ---------------------------------------------------------------- dropout


class _Interrupt(keras.callbacks.Callback):
    """Raises after batch `batch` of epoch `epoch`, as a crash would."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.at, self.epoch = (epoch, batch), None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise RuntimeError("interrupted")


def _dropout_model():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((12,))
    net = keras_masknet.MaskNet(
        mask_blocks=[
            {"output_size": 8, "aggregation_size": 6, "dropout_rate": 0.2}
        ]
        * 2,
        mlp={"layer_sizes": [8, 4], "dropout": {"rate": 0.3}},
        use_parallel=True,
    )
    model = keras.Model(inputs, keras.layers.Dense(1)(net(inputs)))
    model.compile(keras.optimizers.Adam(1e-2), "mse", jit_compile=JIT)
    return model


def test_with_dropout_a_resumed_run_is_valid_but_draws_other_masks(tmp_path):
    x, y = _checkpoint_data()
    fit = dict(epochs=3, batch_size=16, shuffle=False, verbose=0)
    model = _dropout_model()
    model.fit(x, y, **fit)
    want = [to_numpy(w) for w in model.weights]

    model = _dropout_model()
    backup = keras.callbacks.BackupAndRestore(str(tmp_path))
    with pytest.raises(RuntimeError, match="interrupted"):
        model.fit(x, y, callbacks=[backup, _Interrupt(1, 2)], **fit)
    model = _dropout_model()
    backup = keras.callbacks.BackupAndRestore(str(tmp_path))
    history = model.fit(x, y, callbacks=[backup], **fit)
    got = [to_numpy(w) for w in model.weights]
    assert np.isfinite(history.history["loss"]).all()
    worst = max(float(np.max(np.abs(g - w))) for g, w in zip(got, want))
    # Keras keeps no dropout seed state in the backup: other masks.
    assert worst > 1e-3


# ------------------------------------------------------- ModelCheckpoint


#: Batches per epoch of the checkpoint tests (batch size 16).
STEPS = 4


def _checkpoint_model():
    inputs = keras.Input((12,))
    net = keras_masknet.MaskNet(
        mask_blocks=[
            {"output_size": 8, "aggregation_size": 6, "input_layer_norm": True},
            {"output_size": 6, "reduction_factor": 0.5},
        ],
        mlp={"layer_sizes": [8, 4], "batch_norm": {"momentum": 0.1}},
        use_parallel=False,
    )
    model = keras.Model(
        inputs, keras.layers.Dense(1, activation="sigmoid")(net(inputs))
    )
    model.compile(
        keras.optimizers.Adam(1e-2), "binary_crossentropy", jit_compile=JIT
    )
    return model


def _checkpoint_data():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(16 * STEPS, 12)).astype("float32")
    y = (x[:, :1] * x[:, 1:2] > 0).astype("float32")
    return x, y


def _assert_same_weights(got, want, atol):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(to_numpy(g), to_numpy(w), atol=atol, rtol=0)


def test_model_checkpoint_file_reloads_and_continues_training(tmp_path):
    x, y = _checkpoint_data()
    keras.utils.set_random_seed(7)
    model = _checkpoint_model()
    path = tmp_path / "epoch_{epoch}.keras"
    checkpoint = keras.callbacks.ModelCheckpoint(str(path))
    fit = dict(batch_size=16, shuffle=False, verbose=0)
    model.fit(x, y, epochs=2, callbacks=[checkpoint], **fit)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "epoch_1.keras",
        "epoch_2.keras",
    ]
    # The last checkpoint is the trained model, optimizer state included.
    last = keras.saving.load_model(tmp_path / "epoch_2.keras", safe_mode=True)
    _assert_same_weights(last.weights, model.weights, atol=0)
    _assert_same_weights(
        last.optimizer.variables, model.optimizer.variables, atol=0
    )
    # Epoch 1's checkpoint, trained on for epoch 2, ends where the
    # uninterrupted run ended (same batches; no dropout). The tolerance
    # allows the reordering of float sums by a retraced train step.
    first = keras.saving.load_model(tmp_path / "epoch_1.keras", safe_mode=True)
    assert int(to_numpy(first.optimizer.iterations)) == STEPS
    history = first.fit(x, y, epochs=2, initial_epoch=1, **fit)
    assert np.isfinite(history.history["loss"]).all()
    assert int(to_numpy(first.optimizer.iterations)) == 2 * STEPS
    _assert_same_weights(first.weights, model.weights, atol=1e-5)


def test_weights_only_checkpoint_reloads_into_a_new_model(tmp_path):
    x, y = _checkpoint_data()
    keras.utils.set_random_seed(8)
    model = _checkpoint_model()
    path = tmp_path / "best.weights.h5"
    checkpoint = keras.callbacks.ModelCheckpoint(
        str(path), save_weights_only=True, monitor="loss", save_best_only=True
    )
    model.fit(x, y, epochs=2, batch_size=16, callbacks=[checkpoint], verbose=0)
    keras.utils.set_random_seed(9)  # different initial weights
    other = _checkpoint_model()
    # Built, the optimizer takes its saved state (moments, iterations) too.
    other.optimizer.build(other.trainable_variables)
    other.load_weights(path)
    _assert_same_weights(other.weights, model.weights, atol=0)
    _assert_same_weights(
        other.optimizer.variables, model.optimizer.variables, atol=0
    )
    history = other.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
