"""Mixed precision: low-precision compute, float32 weights and normalization."""

import keras
import numpy as np
import pytest

from keras_masknet import MaskBlock
from keras_masknet import MaskNet
from tests.helpers import to_numpy

CONFIG = {
    "mask_blocks": [
        {"output_size": 32, "aggregation_size": 48, "input_layer_norm": True},
        {"output_size": 16, "reduction_factor": 0.5},
    ],
    "mlp": {
        "layer_sizes": [24, 8],
        "batch_norm": {"momentum": 0.1},
        "final_layer_activation": True,
    },
}
LOW = {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}


def _dtype(x):
    return keras.backend.standardize_dtype(x.dtype)


@pytest.mark.parametrize("policy", list(LOW))
@pytest.mark.parametrize(
    "use_parallel", [False, True], ids=["serial", "parallel"]
)
def test_weights_stay_float32_and_compute_is_low_precision(
    policy, use_parallel
):
    keras.config.set_dtype_policy(policy)
    net = MaskNet(**CONFIG, use_parallel=use_parallel)
    x = np.random.default_rng(0).normal(size=(8, 40)).astype("float32")
    y = net(x, training=False)
    assert _dtype(y) == LOW[policy]
    assert net.compute_dtype == LOW[policy]
    assert {_dtype(w) for w in net.weights} == {"float32"}
    for block in net.mask_block_layers:
        assert block.compute_dtype == LOW[policy]
        assert block.output_norm.compute_dtype == LOW[policy]
    # Close to the float32 result, within the low dtype's precision.
    keras.config.set_dtype_policy("float32")
    ref = MaskNet(**CONFIG, use_parallel=use_parallel)
    ref.build(x.shape)
    ref.set_weights([to_numpy(w) for w in net.weights])
    want = to_numpy(ref(x, training=False))
    got = to_numpy(y).astype("float32")
    tol = 0.05 if policy == "mixed_float16" else 0.25
    np.testing.assert_allclose(got, want, atol=tol, rtol=tol)


# Inputs that are exact in the low dtype but whose normalization fails IN
# that dtype: in float16, 300**2 overflows the variance (max 65504); in
# bfloat16 (8-bit mantissa) the mean 257 of 256 and 258 is not representable.
# Normalized in float32, a width-2 LayerNorm gives exactly -1 and +1.
LN_INPUTS = {
    "mixed_float16": [[-300.0, 300.0]],
    "mixed_bfloat16": [[256.0, 258.0]],
}


@pytest.mark.parametrize("policy", list(LOW))
def test_layer_norm_normalizes_in_float32(policy):
    keras.config.set_dtype_policy(policy)
    block = MaskBlock(output_size=2, aggregation_size=2)
    block.build((None, 3))
    norm = block.output_norm
    y = to_numpy(norm(np.array(LN_INPUTS[policy], "float32")))
    np.testing.assert_allclose(y.astype("float32"), [[-1.0, 1.0]], atol=1e-2)
    assert _dtype(norm.gamma) == "float32"


def test_bfloat16_stays_finite_on_inputs_up_to_1e4():
    keras.config.set_dtype_policy("mixed_bfloat16")
    net = MaskNet(**CONFIG, use_parallel=True)
    rng = np.random.default_rng(1)
    x = (rng.uniform(-1, 1, size=(64, 40)) * 1e4).astype("float32")
    for training in (False, True):
        y = to_numpy(net(x, training=training)).astype("float32")
        assert np.isfinite(y).all()


def test_float16_stays_finite_on_unit_scale_inputs():
    keras.config.set_dtype_policy("mixed_float16")
    net = MaskNet(**CONFIG, use_parallel=False)
    rng = np.random.default_rng(2)
    x = rng.uniform(-10, 10, size=(64, 40)).astype("float32")
    for training in (False, True):
        y = to_numpy(net(x, training=training)).astype("float32")
        assert np.isfinite(y).all()


@pytest.mark.parametrize("policy", list(LOW))
def test_model_fit_under_mixed_precision(policy):
    keras.config.set_dtype_policy(policy)
    inputs = keras.Input((40,))
    net = MaskNet(**CONFIG, use_parallel=True)
    head = keras.layers.Dense(1, activation="sigmoid", dtype="float32")
    model = keras.Model(inputs, head(net(inputs)))
    model.compile("adam", "binary_crossentropy")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(256, 40)).astype("float32")
    y = (x[:, :1] * x[:, 1:2] > 0).astype("float32")
    history = model.fit(x, y, epochs=2, batch_size=64, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert {_dtype(w) for w in model.weights} <= {"float32", "int64"}
