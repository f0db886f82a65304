"""Determinism: the same seed builds the same weights and trains to the same
result, bit for bit, on the same backend (CPU).

The conditions (docs/reliability.md): `keras.utils.set_random_seed(seed)`
before the model is built; on TensorFlow also
`tf.config.experimental.enable_op_determinism()`; a fixed or seeded batch
order. Training runs in fresh subprocesses (tests/interruption_worker.py),
so nothing but the seed is shared between the two runs.
"""

import keras
import numpy as np
import pytest

import keras_masknet
from tests.helpers import BACKEND
from tests.helpers import npz_arrays
from tests.helpers import run_interruption_worker
from tests.helpers import to_numpy

CONFIG = {
    "mask_blocks": [
        {
            "output_size": 8,
            "reduction_factor": 0.5,
            "input_layer_norm": True,
            "mask_projection_dim": 3,
        },
        {"output_size": 6, "aggregation_size": 5, "dropout_rate": 0.1},
    ],
    "mlp": {"layer_sizes": [8, 4], "batch_norm": {}, "dropout": {}},
    "embedding_layer_norm": True,
}


def _initial_weights(seed):
    keras.utils.set_random_seed(seed)
    net = keras_masknet.MaskNet(**CONFIG)
    net.build((None, 12))
    return [to_numpy(w) for w in net.weights]


def test_the_same_seed_builds_the_same_weights():
    first, second = _initial_weights(3), _initial_weights(3)
    assert len(first) == len(second) > 0
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    other = _initial_weights(4)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other))


def _weights(directory):
    return {
        stage: npz_arrays(directory / f"full_{stage}.npz")
        for stage in ("initial", "final")
    }


@pytest.mark.slow
def test_two_processes_with_the_same_seed_train_to_identical_weights(
    tmp_path, subprocess_env, uninterrupted_training
):
    # Both with the worker's seed: the first process is the one that
    # test_interruption.py compares with too (tests/conftest.py).
    result_a, directory_a = uninterrupted_training
    a = _weights(directory_a)
    result_b = run_interruption_worker(
        ["full", tmp_path / "b"], {**subprocess_env, "KERAS_BACKEND": BACKEND}
    )
    b = _weights(tmp_path / "b")
    for stage in ("initial", "final"):
        assert len(a[stage]) == len(b[stage]) > 0
        for x, y in zip(a[stage], b[stage]):
            np.testing.assert_array_equal(x, y)
    assert result_a["loss"] == result_b["loss"]
    # Training changed the weights, so equal final weights mean something.
    assert any(
        not np.array_equal(x, y) for x, y in zip(a["initial"], a["final"])
    )
