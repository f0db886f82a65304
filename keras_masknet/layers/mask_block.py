"""The MaskBlock layer: a layer masked feature by feature by its own input."""

from typing import Any

import keras
from keras import ops

from keras_masknet.layers import _validation as v
from keras_masknet.layers._utils import clone

#: LayerNorm epsilon of the reference (PyTorch's default).
LAYER_NORM_EPSILON = 1e-5


@keras.saving.register_keras_serializable(package="keras_masknet")
class MaskBlock(keras.layers.Layer):
    """MaskBlock: a hidden layer multiplied by an instance-guided mask.

    The block computes, for `inputs` of shape `(batch, input_dim)` and a
    `mask_input` of shape `(batch, mask_input_dim)` (the inputs themselves
    unless given):

    ```
    net    = LayerNorm(inputs) if input_layer_norm else inputs
    mask   = W2 @ ReLU(W1 @ mask_input + b1) + b2      # (batch, input_dim)
    output = LayerNorm(W3 @ (net * mask) + b3)         # (batch, output_size)
    ```

    `W1` maps `mask_input_dim -> aggregation_size`, `W2` maps
    `aggregation_size -> input_dim` and `W3` maps `input_dim -> output_size`.
    This is exactly the MaskBlock of Twitter's open-sourced home-timeline
    ranker ("the reference"): every dense layer has a bias, kernels are
    Glorot-uniform and biases zero, both LayerNorms use epsilon `1e-5` with a
    learned scale and offset, the mask input is never normalized, and there is
    no activation after the output LayerNorm.

    Exactly one of `reduction_factor` and `aggregation_size` must be given.
    With `reduction_factor`, the aggregation width is
    `int(mask_input_dim * reduction_factor)`, truncated toward zero like the
    reference, and taken from the width of the MASK INPUT (which differs from
    the masked layer's width in a serial MaskNet).

    Mixed precision: under a `mixed_float16` or `mixed_bfloat16` policy the
    dense layers and the product `net * mask` run in the low dtype, the weights
    stay float32 and both LayerNorms normalize in float32. In float16 (largest
    value about 65504) the product of input and mask is where overflow happens
    first, then the hidden projection of that product: with inputs beyond
    about `|x| > 10` or untrained, large masks, set `input_layer_norm=True` or
    use `mixed_bfloat16`, which has float32's range.

    Args:
        output_size: int. Width of the block's output. Must be positive.
        reduction_factor: float, optional. Aggregation width as a multiple of
            the mask input's width. Must be positive and finite, and give a
            truncated width of at least 1. Defaults to `None`.
        aggregation_size: int, optional. Width of the mask's hidden layer.
            Defaults to `None`.
        input_layer_norm: bool. Whether to apply LayerNorm to `inputs` before
            they are masked (the mask input stays raw). Defaults to `False`.
        kernel_initializer: initializer for the three dense kernels.
            Defaults to `"glorot_uniform"` (the reference's Xavier-uniform).
        bias_initializer: initializer for the three dense biases.
            Defaults to `"zeros"`.
        kernel_regularizer: optional regularizer for the dense kernels.
            Defaults to `None`.
        bias_regularizer: optional regularizer for the dense biases.
            Defaults to `None`.
        **kwargs: other `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: tensor of shape `(batch, input_dim)`: the layer to mask.
        mask_input: optional tensor of shape `(batch, mask_input_dim)` from
            which the mask is computed. Defaults to `inputs`.

    Input shape:
        `inputs`: `(batch, input_dim)`; `mask_input`: `(batch, mask_input_dim)`.

    Output shape:
        `(batch, output_size)`.

    Example:

    ```python
    import numpy as np
    import keras_masknet

    block = keras_masknet.MaskBlock(output_size=8, aggregation_size=16)
    x = np.random.rand(4, 12).astype("float32")
    y = block(x)
    assert tuple(y.shape) == (4, 8)

    # Masking one layer with a mask computed from another:
    block = keras_masknet.MaskBlock(output_size=8, reduction_factor=0.5)
    features = np.random.rand(4, 30).astype("float32")
    y = block(x, mask_input=features)  # aggregation width int(30 * 0.5) == 15
    assert block.aggregation_width == 15
    ```

    References:
        - [Wang et al., 2021, MaskNet](https://arxiv.org/abs/2102.07619).
        - Twitter's the-algorithm-ml, `projects/home/recap/model/mask_net.py`.
    """

    def __init__(
        self,
        output_size: int,
        reduction_factor: float | None = None,
        aggregation_size: int | None = None,
        input_layer_norm: bool = False,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        **kwargs: Any,
    ) -> None:
        v.check_unknown_kwargs(type(self).__name__, kwargs)
        super().__init__(**kwargs)
        self.output_size = v.check_positive_int("output_size", output_size)
        if reduction_factor is not None:
            reduction_factor = v.check_positive_number(
                "reduction_factor", reduction_factor
            )
        aggregation_size = v.check_optional_positive_int(
            "aggregation_size", aggregation_size
        )
        if (reduction_factor is None) == (aggregation_size is None):
            raise ValueError(
                "Exactly one of `reduction_factor` and `aggregation_size` must "
                f"be set. Received: reduction_factor={reduction_factor!r}, "
                f"aggregation_size={aggregation_size!r}"
            )
        self.reduction_factor = reduction_factor
        self.aggregation_size = aggregation_size
        self.input_layer_norm = v.check_bool(
            "input_layer_norm", input_layer_norm
        )
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.supports_masking = False
        # Set by build().
        self.input_dim: int | None = None
        self.mask_input_dim: int | None = None
        self.aggregation_width: int | None = None

    def aggregation_width_for(self, mask_input_dim: int) -> int:
        """The mask's hidden width for a mask input of `mask_input_dim`.

        Raises:
            ValueError: if `reduction_factor` truncates the width to 0.
        """
        if self.aggregation_size is not None:
            return self.aggregation_size
        width = int(mask_input_dim * self.reduction_factor)
        if width < 1:
            raise ValueError(
                "`reduction_factor` gives an aggregation width of "
                f"int({mask_input_dim} * {self.reduction_factor}) == {width} "
                f"for a mask input of width {mask_input_dim}; it must be at "
                f"least 1. Received: reduction_factor={self.reduction_factor}"
            )
        return width

    def _dense(self, units: int, name: str, **kwargs: Any) -> Any:
        return keras.layers.Dense(
            units,
            kernel_initializer=clone(self.kernel_initializer),
            bias_initializer=clone(self.bias_initializer),
            kernel_regularizer=clone(self.kernel_regularizer),
            bias_regularizer=clone(self.bias_regularizer),
            dtype=self.dtype_policy,
            name=name,
            **kwargs,
        )

    def build(self, inputs_shape: Any, mask_input_shape: Any = None) -> None:
        inputs_shape = v.check_rank2_shape("inputs", inputs_shape, self.name)
        if mask_input_shape is None:
            mask_input_shape = inputs_shape
        mask_input_shape = v.check_rank2_shape(
            "mask_input", mask_input_shape, self.name
        )
        input_dim = int(inputs_shape[-1])
        mask_input_dim = int(mask_input_shape[-1])
        aggregation_width = self.aggregation_width_for(mask_input_dim)

        # Every check passed: only now create the sublayers and weights.
        self.input_dim = input_dim
        self.mask_input_dim = mask_input_dim
        self.aggregation_width = aggregation_width
        if self.input_layer_norm:
            self.input_norm = keras.layers.LayerNormalization(
                epsilon=LAYER_NORM_EPSILON,
                dtype=self.dtype_policy,
                name="input_layer_norm",
            )
            self.input_norm.build(inputs_shape)
        self.mask_aggregation = self._dense(
            aggregation_width, name="mask_aggregation", activation="relu"
        )
        self.mask_aggregation.build(mask_input_shape)
        self.mask_projection = self._dense(input_dim, name="mask_projection")
        self.mask_projection.build((mask_input_shape[0], aggregation_width))
        self.hidden = self._dense(self.output_size, name="hidden")
        self.hidden.build(inputs_shape)
        self.output_norm = keras.layers.LayerNormalization(
            epsilon=LAYER_NORM_EPSILON,
            dtype=self.dtype_policy,
            name="layer_norm",
        )
        self.output_norm.build((inputs_shape[0], self.output_size))

    def _check_call_shapes(self, inputs: Any, mask_input: Any) -> None:
        in_shape = tuple(inputs.shape)
        mask_shape = tuple(mask_input.shape)
        v.check_rank2_shape("inputs", in_shape, self.name)
        v.check_rank2_shape("mask_input", mask_shape, self.name)
        if in_shape[-1] != self.input_dim:
            raise ValueError(
                f"Layer '{self.name}' was built for `inputs` with last axis "
                f"{self.input_dim}. Received: inputs.shape={in_shape}"
            )
        if mask_shape[-1] != self.mask_input_dim:
            raise ValueError(
                f"Layer '{self.name}' was built for `mask_input` with last "
                f"axis {self.mask_input_dim}. "
                f"Received: mask_input.shape={mask_shape}"
            )
        if (
            in_shape[0] is not None
            and mask_shape[0] is not None
            and in_shape[0] != mask_shape[0]
        ):
            raise ValueError(
                "`mask_input` must have the same batch size as `inputs`. "
                f"Received: inputs.shape={in_shape}, "
                f"mask_input.shape={mask_shape}"
            )

    def compute_mask_values(self, mask_input: Any) -> Any:
        """The instance-guided mask for `mask_input`: `(batch, input_dim)`."""
        return self.mask_projection(self.mask_aggregation(mask_input))

    def call(self, inputs: Any, mask_input: Any = None) -> Any:
        if mask_input is None:
            mask_input = inputs
        self._check_call_shapes(inputs, mask_input)
        net = self.input_norm(inputs) if self.input_layer_norm else inputs
        mask = self.compute_mask_values(mask_input)
        return self.output_norm(self.hidden(ops.multiply(net, mask)))

    def compute_output_shape(
        self, inputs_shape: Any, mask_input_shape: Any = None
    ) -> tuple:
        return (tuple(inputs_shape)[0], self.output_size)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "output_size": self.output_size,
                "reduction_factor": self.reduction_factor,
                "aggregation_size": self.aggregation_size,
                "input_layer_norm": self.input_layer_norm,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(
                    self.bias_initializer
                ),
                "kernel_regularizer": keras.regularizers.serialize(
                    self.kernel_regularizer
                ),
                "bias_regularizer": keras.regularizers.serialize(
                    self.bias_regularizer
                ),
            }
        )
        return config
