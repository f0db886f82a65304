"""Child process of test_interruption.py and test_determinism.py.

    python -m tests.interruption_worker full DIR [--seed N]
    python -m tests.interruption_worker interrupt DIR --kill-at EPOCH:BATCH
    python -m tests.interruption_worker resume DIR

Trains one small MaskNet click model on the backend of KERAS_BACKEND, under
the conditions that make training repeatable (see docs/reliability.md):

- `keras.utils.set_random_seed(SEED)` before the model is built, and on
  TensorFlow `tf.config.experimental.enable_op_determinism()`;
- a fixed batch order (`shuffle=False`): `BackupAndRestore` restarts the
  interrupted epoch, which must then see the same batches again;
- no dropout (Keras keeps no dropout seed state in the backup:
  test_interruption.py shows a resumed run with dropout differs).

`full` trains without interruption. `interrupt` trains with
`keras.callbacks.BackupAndRestore(DIR/backup)` and, after batch BATCH of
epoch EPOCH (0-based), writes the marker file DIR/marker and waits there to
be killed: the parent kills it with SIGKILL once the marker exists.
`resume` runs the same `fit` with the same backup directory and finishes.
`full` and `resume` write the initial and final weights to DIR/*.npz and
print one JSON line.
"""

import argparse
import json
import os
import pathlib
import sys
import time

import keras
import numpy as np

import keras_masknet

BACKEND = keras.backend.backend()
SEED = 20240607
EPOCHS = 4
BATCH_SIZE = 32
NUM_SAMPLES = 256  # 8 batches per epoch
NUM_FEATURES = 16
CONFIG = {
    "mask_blocks": [
        {
            "output_size": 12,
            "reduction_factor": 0.5,
            "input_layer_norm": True,
        },
        {"output_size": 8, "aggregation_size": 16},
    ],
    # BatchNorm: its moving statistics must come back from the backup too.
    "mlp": {
        "layer_sizes": [16, 8],
        "batch_norm": {"affine": True, "momentum": 0.1},
        "final_layer_activation": True,
    },
    "use_parallel": True,
}


def make_deterministic(seed: int = SEED) -> None:
    """Seed every generator Keras uses; make TensorFlow's ops repeatable."""
    keras.utils.set_random_seed(seed)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(NUM_SAMPLES, NUM_FEATURES)).astype("float32")
    y = (x[:, :1] * x[:, 1:2] > 0).astype("float32")
    return x, y


def build_model() -> keras.Model:
    inputs = keras.Input((NUM_FEATURES,))
    net = keras_masknet.MaskNet(**CONFIG)
    outputs = keras.layers.Dense(1, activation="sigmoid")(net(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(1e-2), "binary_crossentropy")
    return model


class KillPoint(keras.callbacks.Callback):
    """After batch `batch` of epoch `epoch`, write `marker` and wait."""

    def __init__(self, epoch: int, batch: int, marker: pathlib.Path):
        super().__init__()
        self.kill_epoch, self.kill_batch, self.marker = epoch, batch, marker
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) != (self.kill_epoch, self.kill_batch):
            return
        tmp = self.marker.with_suffix(".tmp")
        with open(tmp, "w") as f:
            f.write(f"{self.epoch}:{batch}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.marker)
        # Mid-epoch, weights changed since the last backup: wait for SIGKILL.
        while True:
            time.sleep(1)


class FirstEpoch(keras.callbacks.Callback):
    """Records the epoch `fit` starts at (BackupAndRestore may skip some)."""

    def __init__(self):
        super().__init__()
        self.first_epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.first_epoch is None:
            self.first_epoch = epoch


def _save(path: pathlib.Path, weights: list) -> None:
    np.savez(path, *[np.asarray(w) for w in weights])


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["full", "interrupt", "resume"])
    parser.add_argument("dir", type=pathlib.Path)
    parser.add_argument("--kill-at", default="2:3")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)

    make_deterministic(args.seed)
    x, y = data()
    model = build_model()
    _save(args.dir / f"{args.mode}_initial.npz", model.get_weights())
    first = FirstEpoch()
    callbacks = [first]
    if args.mode != "full":
        callbacks.append(
            keras.callbacks.BackupAndRestore(str(args.dir / "backup"))
        )
    if args.mode == "interrupt":
        epoch, batch = (int(n) for n in args.kill_at.split(":"))
        callbacks.append(KillPoint(epoch, batch, args.dir / "marker"))
    history = model.fit(
        x,
        y,
        epochs=EPOCHS,
        batch_size=BATCH_SIZE,
        shuffle=False,
        callbacks=callbacks,
        verbose=0,
    )
    _save(args.dir / f"{args.mode}_final.npz", model.get_weights())
    return {
        "backend": BACKEND,
        "mode": args.mode,
        "first_epoch": first.first_epoch,
        "loss": [float(v) for v in history.history["loss"]],
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
