"""A prototype: a parallel MaskNet whose K blocks run as batched operations.

Benchmark-only (not part of keras_masknet). The K blocks of a parallel
MaskNet share their input and mask input, so their weights can be stacked:

```
h      = ReLU(x @ [W1_1 .. W1_K] + b1)         one GEMM (batch, K*a)
mask_k = h_k @ W2_k + b2_k                      one batched GEMM (K, batch, d)
out_k  = LN_k((x * mask_k) @ W3_k + b3_k)       one batched GEMM, one LN
output = concat_k(out_k)                        (batch, K*o), block order
```

It computes the reference's block (bias, no activation, no input LayerNorm)
and the same MLP head; `load_from_mask_net` copies the weights of a built
`keras_masknet.MaskNet` (so `load_reference_weights` keeps working: load into
a MaskNet, then stack). The worker checks that both give the same outputs.
"""

from typing import Any

import keras
import numpy as np
from keras import ops

import keras_masknet
from keras_masknet.layers.mask_block import LAYER_NORM_EPSILON


class FusedParallelMaskNet(keras.layers.Layer):
    """A parallel MaskNet of identical reference blocks on stacked weights."""

    def __init__(
        self,
        mask_blocks: list,
        mlp: Any = None,
        use_parallel: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not use_parallel:
            raise ValueError("FusedParallelMaskNet is parallel only.")
        first = dict(mask_blocks[0])
        if any(dict(b) != first for b in mask_blocks):
            raise ValueError("The prototype needs identical blocks.")
        if first.get("input_layer_norm"):
            raise ValueError("The prototype has no input LayerNorm.")
        self.num_blocks = len(mask_blocks)
        self.block = first
        self.mlp_layer = (
            None
            if mlp is None
            else keras_masknet.MLP(**mlp, dtype=self.dtype_policy, name="mlp")
        )

    def build(self, inputs_shape: Any) -> None:
        d = int(inputs_shape[-1])
        k = self.num_blocks
        if self.block.get("aggregation_size") is not None:
            a = int(self.block["aggregation_size"])
        else:
            a = int(d * self.block["reduction_factor"])
        o = int(self.block["output_size"])
        self.d, self.a, self.o = d, a, o
        rng = np.random.default_rng(0)

        def glorot(*shape: int) -> np.ndarray:
            # Glorot-uniform per block: the fans of one block's (in, out).
            limit = np.sqrt(6.0 / (shape[-2] + shape[-1]))
            return rng.uniform(-limit, limit, shape).astype("float32")

        def add(name: str, value: np.ndarray) -> Any:
            return self.add_weight(
                name=name,
                shape=value.shape,
                initializer=lambda shape, dtype=None: value,
            )

        w1 = np.concatenate([glorot(d, a) for _ in range(k)], axis=1)
        self.w1 = add("w1", w1)
        self.b1 = add("b1", np.zeros((k * a,), "float32"))
        self.w2 = add("w2", glorot(k, a, d))
        self.b2 = add("b2", np.zeros((k, 1, d), "float32"))
        self.w3 = add("w3", glorot(k, d, o))
        self.b3 = add("b3", np.zeros((k, 1, o), "float32"))
        self.gamma = add("gamma", np.ones((k, 1, o), "float32"))
        self.beta = add("beta", np.zeros((k, 1, o), "float32"))
        if self.mlp_layer is not None:
            self.mlp_layer.build((inputs_shape[0], k * o))

    def load_from_mask_net(self, mask_net: Any) -> None:
        """Copy (stack) the weights of a built `keras_masknet.MaskNet`."""
        blocks = mask_net.mask_block_layers
        np_ = keras.ops.convert_to_numpy
        self.w1.assign(
            np.concatenate(
                [np_(b.mask_aggregation.kernel) for b in blocks], axis=1
            )
        )
        self.b1.assign(
            np.concatenate([np_(b.mask_aggregation.bias) for b in blocks])
        )

        def stack(get: Any, bias: bool = False) -> np.ndarray:
            arr = np.stack([np_(get(b)) for b in blocks])
            return arr[:, None, :] if bias else arr

        self.w2.assign(stack(lambda b: b.mask_projection.kernel))
        self.b2.assign(stack(lambda b: b.mask_projection.bias, True))
        self.w3.assign(stack(lambda b: b.hidden.kernel))
        self.b3.assign(stack(lambda b: b.hidden.bias, True))
        self.gamma.assign(stack(lambda b: b.output_norm.gamma, True))
        self.beta.assign(stack(lambda b: b.output_norm.beta, True))
        if self.mlp_layer is not None:
            self.mlp_layer.set_weights(mask_net.mlp_layer.get_weights())

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        dtype = self.compute_dtype
        x = ops.cast(inputs, dtype)
        k, a = self.num_blocks, self.a
        h = ops.relu(
            ops.matmul(x, ops.cast(self.w1, dtype)) + ops.cast(self.b1, dtype)
        )
        # (batch, K*a) -> (K, batch, a): one batched GEMM per layer.
        h = ops.transpose(ops.reshape(h, (-1, k, a)), (1, 0, 2))
        mask = ops.matmul(h, ops.cast(self.w2, dtype)) + ops.cast(
            self.b2, dtype
        )
        masked = ops.expand_dims(x, 0) * mask
        hidden = ops.matmul(masked, ops.cast(self.w3, dtype)) + ops.cast(
            self.b3, dtype
        )
        # LayerNorm per block, in float32, as keras.ops.layer_normalization
        # computes it (x * inv + (beta - mean * inv), inv = gamma / std).
        hidden = ops.cast(hidden, "float32")
        mean, var = ops.moments(hidden, axes=[-1], keepdims=True)
        inv = ops.rsqrt(var + LAYER_NORM_EPSILON) * self.gamma
        out = hidden * inv + (-mean * inv + self.beta)
        out = ops.cast(out, dtype)
        # (K, batch, o) -> (batch, K*o): the blocks' outputs in block order.
        out = ops.reshape(ops.transpose(out, (1, 0, 2)), (-1, k * self.o))
        if self.mlp_layer is not None:
            out = self.mlp_layer(out, training=training)
        return out

    def compute_output_shape(self, inputs_shape: Any) -> tuple:
        width = self.num_blocks * int(self.block["output_size"])
        if self.mlp_layer is not None:
            width = self.mlp_layer.layer_sizes[-1]
        return (inputs_shape[0], width)
