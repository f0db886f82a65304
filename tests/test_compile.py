"""MaskNet under each backend's compiler.

`model.compile(jit_compile=True)` is XLA on TensorFlow and JAX and
`torch.compile` on PyTorch; docs/guide/performance.md recommends it for
long runs (on PyTorch it also cuts the training memory). The compiled
training step must accept every part of MaskNet (Keras silently falls
back to no XLA on TensorFlow when a layer does not support it) and train
to the same weights as the uncompiled step.
"""

import keras
import numpy as np
import pytest

import keras_masknet
from tests.helpers import BACKEND

pytestmark = pytest.mark.slow  # torch.compile: about a minute on 2 cores


def _model(use_parallel: bool) -> keras.Model:
    keras.utils.set_random_seed(7)
    inputs = keras.Input((12,))
    backbone = keras_masknet.MaskNet(
        mask_blocks=[
            {"output_size": 8, "aggregation_size": 6},
            {"output_size": 6, "reduction_factor": 1.5},
        ],
        mlp={"layer_sizes": [8], "batch_norm": {}} if use_parallel else None,
        use_parallel=use_parallel,
        embedding_layer_norm=True,
    )
    head = keras.layers.Dense(1, activation="sigmoid")
    return keras.Model(inputs, head(backbone(inputs)))


@pytest.mark.parametrize("use_parallel", [True, False])
def test_jit_compiled_training_equals_the_uncompiled_step(use_parallel):
    if BACKEND == "torch" and not use_parallel:
        # About a minute per torch.compile on 2 cores: the parallel case
        # holds every layer (blocks, MLP, BatchNorm, LayerNorms).
        pytest.skip("torch.compile: the parallel case covers every layer")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 12)).astype("float32")
    y = (x[:, :1] * x[:, 1:2] > 0).astype("float32")
    weights = {}
    for jit in (False, True):
        model = _model(use_parallel)
        model.compile(
            keras.optimizers.SGD(0.1), "binary_crossentropy", jit_compile=jit
        )
        # Two steps: Keras' torch trainer compiles the second one again
        # (the gradients are set from then on).
        history = model.fit(x, y, batch_size=32, epochs=1, shuffle=False)
        # Keras turns XLA off without a word when a layer cannot compile.
        assert model.jit_compile is jit, (BACKEND, model.jit_compile)
        assert np.isfinite(history.history["loss"][-1])
        weights[jit] = [np.asarray(w) for w in model.get_weights()]
    assert len(weights[True]) == len(weights[False])
    for compiled, eager in zip(weights[True], weights[False]):
        np.testing.assert_allclose(compiled, eager, rtol=1e-4, atol=1e-5)
    # The step moved the weights: the comparison is not of two copies.
    first = _model(use_parallel).get_weights()
    assert any(not np.allclose(w, w0) for w, w0 in zip(weights[True], first))
