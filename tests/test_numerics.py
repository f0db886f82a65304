"""Numerics at the edges: degenerate and extreme inputs, NaN and Inf.

- All-zero inputs, constant inputs (a LayerNorm of a constant vector has
  zero variance), inputs of magnitude 1e4 and 1e-6 in float32 and
  `mixed_bfloat16`, unit-scale inputs in `mixed_float16`: outputs and
  gradients are finite, in training and in inference.
- A NaN or Inf in one input row makes that row's output non-finite and
  leaves every other row exactly as it was, in inference (eager calls and
  compiled `predict`: TensorFlow's oneDNN fuses dense + relu into a kernel
  that turns NaN into 0, which the layers avoid); in training a BatchNorm
  in the MLP spreads it to the whole batch (docs/reliability.md).
- In `fit`, the loss is NaN at the first batch with a NaN row, so
  `keras.callbacks.TerminateOnNaN` stops training there.
"""

import keras
import numpy as np
import pytest

from keras_masknet import MaskBlock
from keras_masknet import MaskNet
from tests.autodiff import outputs_and_gradients
from tests.helpers import to_numpy

WIDTH = 24
BATCH = 8
CONFIGS = {
    # The reference's block, one with an input LayerNorm; an MLP with
    # BatchNorm, dropout and a final ReLU.
    "parallel, reference blocks, batch norm": {
        "mask_blocks": [
            {"output_size": 16, "aggregation_size": 32},
            {
                "output_size": 8,
                "reduction_factor": 0.5,
                "input_layer_norm": True,
            },
        ],
        "mlp": {
            "layer_sizes": [16, 8],
            "batch_norm": {"affine": True, "momentum": 0.1},
            "dropout": {"rate": 0.2},
            "final_layer_activation": True,
        },
        "use_parallel": True,
    },
    # The paper's block and per-field LayerNorm, a low-rank mask, block
    # dropout, in series; no MLP.
    "serial, paper blocks": {
        "mask_blocks": [
            {
                "output_size": 16,
                "reduction_factor": 2.0,
                "reduction_factor_base": "inputs",
                "use_hidden_bias": False,
                "output_activation": "relu",
                "mask_projection_dim": 4,
                "dropout_rate": 0.2,
            }
        ]
        * 3,
        "embedding_layer_norm": True,
        "normalize_mask_input": True,
    },
}
WITH_BATCH_NORM = "parallel, reference blocks, batch norm"
WITHOUT_BATCH_NORM = "serial, paper blocks"


def _uniform(scale, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.uniform(-1, 1, size=(BATCH, WIDTH)) * scale).astype("float32")


INPUTS = {
    "all zeros": lambda: np.zeros((BATCH, WIDTH), "float32"),
    "one constant": lambda: np.full((BATCH, WIDTH), 3.5, "float32"),
    "a constant per row": lambda: np.repeat(
        np.linspace(-5, 5, BATCH, dtype="float32")[:, None], WIDTH, axis=1
    ),
    "magnitude 1e4": lambda: _uniform(1e4),
    "magnitude 1e-6": lambda: _uniform(1e-6),
    "unit scale": lambda: _uniform(1.0),
}
CASES = [
    (policy, inputs)
    for policy in ("float32", "mixed_bfloat16")
    for inputs in INPUTS
    if inputs != "unit scale"
] + [("mixed_float16", "unit scale")]
# Not in float16: a batch of identical rows (all zeros, say). BatchNorm then
# sees zero variance, and the backward pass through each zero-variance
# normalization multiplies gradients by up to 1 / sqrt(1e-5) ~ 316: input
# gradients can overflow float16 (docs/reliability.md says so).


def _randomize(layer, seed=0):
    """Random weights everywhere, biases and offsets included (zero biases
    would make the output of a zero input trivially zero)."""
    rng = np.random.default_rng(seed)
    for w in layer.weights:
        value = rng.normal(0, 0.3, size=w.shape)
        if w.path.endswith(("gamma", "moving_variance")):
            value = 1 + np.abs(value)
        w.assign(value.astype("float32"))


def _assert_finite(arrays, what):
    for i, a in enumerate(keras.tree.flatten(arrays)):
        assert np.isfinite(np.asarray(a, "float32")).all(), f"{what}[{i}]"


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize(
    "policy, inputs", CASES, ids=[f"{i} in {p}" for p, i in CASES]
)
def test_outputs_and_gradients_are_finite_for(config, policy, inputs):
    keras.config.set_dtype_policy(policy)
    net = MaskNet(**CONFIGS[config])
    x = INPUTS[inputs]()
    net.build(x.shape)
    _randomize(net)
    for training in (True, False):
        out, weight_grads, input_grads = outputs_and_gradients(
            net, {"inputs": x}, training=training
        )
        _assert_finite([out], f"output, {training=}")
        _assert_finite(weight_grads, f"weight gradients, {training=}")
        _assert_finite(input_grads, f"input gradients, {training=}")


def test_layer_norm_of_a_constant_vector_is_its_offset():
    # Zero variance: (x - mean) / sqrt(0 + eps) == 0, so the output is beta.
    net = MaskNet(
        mask_blocks=[
            {"output_size": 6, "aggregation_size": 5, "input_layer_norm": True}
        ],
        embedding_layer_norm=True,
    )
    x = np.full((3, WIDTH), 7.0, "float32")
    net.build(x.shape)
    rng = np.random.default_rng(0)
    beta = rng.normal(size=(WIDTH,)).astype("float32")
    net.embedding_norms[0].beta.assign(beta)
    got = to_numpy(net.embedding_norms[0](x))
    # Exact on torch; Keras computes x * inv + (beta - mean * inv) on some
    # backends, with inv = 1 / sqrt(eps) ~ 316: the cancellation of
    # 7 * 316 costs float32 about 3e-4 there.
    np.testing.assert_allclose(got, np.broadcast_to(beta, x.shape), atol=1e-3)
    assert np.isfinite(to_numpy(net(x))).all()


# ----------------------------------------------------------- NaN and Inf

BAD_VALUES = {"NaN": np.nan, "+Inf": np.inf, "-Inf": -np.inf}


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("bad", list(BAD_VALUES))
def test_in_inference_a_non_finite_input_row_spoils_only_that_row(config, bad):
    net = MaskNet(**CONFIGS[config])
    x = _uniform(1.0, seed=1)
    clean = to_numpy(net(x, training=False))
    row = 5
    x[row, 3] = BAD_VALUES[bad]
    y = to_numpy(net(x, training=False))
    assert not np.isfinite(y[row]).any(), y[row]
    others = np.arange(BATCH) != row
    np.testing.assert_array_equal(y[others], clean[others])


def test_in_inference_a_nan_field_spoils_only_its_row():
    # Field embeddings (a list), each normalized on its own.
    net = MaskNet(**CONFIGS[WITHOUT_BATCH_NORM])
    rng = np.random.default_rng(2)
    fields = [rng.normal(size=(BATCH, d)).astype("float32") for d in (3, 5)]
    clean = to_numpy(net(fields, training=False))
    fields[1][2, 4] = np.nan
    y = to_numpy(net(fields, training=False))
    assert not np.isfinite(y[2]).any()
    np.testing.assert_array_equal(np.delete(y, 2, 0), np.delete(clean, 2, 0))


def test_in_training_batch_norm_spreads_a_nan_row_to_the_whole_batch():
    net = MaskNet(**CONFIGS[WITH_BATCH_NORM])
    x = _uniform(1.0, seed=3)
    x[1, 0] = np.nan
    y = to_numpy(net(x, training=True))
    assert not np.isfinite(y).any()
    # ... and into the moving statistics, which inference then uses.
    moving = [w for w in net.weights if "moving" in w.path]
    assert moving
    assert all(not np.isfinite(to_numpy(w)).all() for w in moving)
    clean = _uniform(1.0, seed=4)
    assert not np.isfinite(to_numpy(net(clean, training=False))).any()


def test_in_training_without_batch_norm_a_nan_row_stays_in_its_row():
    net = MaskNet(**CONFIGS[WITHOUT_BATCH_NORM])
    x = _uniform(1.0, seed=5)
    x[6, 2] = np.nan
    y = to_numpy(net(x, training=True))
    # (Dropout may zero some of the row's NaNs, depending on the backend.)
    assert np.isnan(y[6]).any()
    assert np.isfinite(np.delete(y, 6, 0)).all()


def _model(config):
    inputs = keras.Input((WIDTH,))
    net = MaskNet(**CONFIGS[config])
    model = keras.Model(inputs, keras.layers.Dense(1)(net(inputs)))
    model.compile("sgd", "mse", jit_compile=False)
    return model


@pytest.mark.parametrize("config", [WITH_BATCH_NORM, WITHOUT_BATCH_NORM])
def test_predict_gives_nan_not_a_plausible_score_for_a_nan_row(config):
    # `predict` runs the compiled graph: on TensorFlow that is where oneDNN
    # fuses a dense product with its relu (NaN -> 0 on AVX-512 CPUs).
    model = _model(config)
    x = np.concatenate([_uniform(1.0, seed=s) for s in range(4)])
    clean = model.predict(x, batch_size=BATCH, verbose=0)
    x[13, 7] = np.nan
    scores = model.predict(x, batch_size=BATCH, verbose=0)
    assert np.isnan(scores[13]).all(), scores[13]
    np.testing.assert_allclose(
        np.delete(scores, 13, 0), np.delete(clean, 13, 0), rtol=1e-6
    )


def test_predict_gives_nan_for_a_nan_row_of_a_separate_mask_input():
    # A NaN only in the mask input reaches the output through the mask's
    # ReLU alone (fused on TensorFlow): the row must still come out NaN.
    inputs, mask_input = keras.Input((6,)), keras.Input((WIDTH,))
    out = MaskBlock(4, aggregation_size=8)(inputs, mask_input=mask_input)
    model = keras.Model([inputs, mask_input], out)
    x = _uniform(1.0, seed=7)[:, :6]
    m = _uniform(1.0, seed=8)
    m[2, 5] = np.nan
    got = model.predict([x, m], verbose=0)
    assert np.isnan(got[2]).all(), got[2]
    assert np.isfinite(np.delete(got, 2, 0)).all()


def test_terminate_on_nan_stops_fit_at_the_first_batch_with_a_nan_row():
    model = _model(WITH_BATCH_NORM)
    x = np.concatenate([_uniform(1.0, seed=s) for s in range(4)])
    x[2 * BATCH + 3, 7] = np.nan  # a row of batch 2
    assert np.flatnonzero(~np.isfinite(x).all(axis=1)).tolist() == [19]
    y = np.ones((len(x), 1), "float32")
    losses = []
    record = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: losses.append(logs["loss"])
    )
    history = model.fit(
        x,
        y,
        batch_size=BATCH,
        epochs=2,
        shuffle=False,
        callbacks=[record, keras.callbacks.TerminateOnNaN()],
        verbose=0,
    )
    # Finite before the bad batch, NaN at it, and no batch after it.
    assert len(losses) == 3, losses
    assert np.isfinite(losses[:2]).all() and np.isnan(losses[2]), losses
    assert len(history.history["loss"]) == 1
