"""The MaskBlock layer: a layer masked feature by feature by its own input."""

from typing import Any

import keras
from keras import ops

from keras_masknet.layers import _validation as v
from keras_masknet.layers._utils import call_sublayer
from keras_masknet.layers._utils import clone
from keras_masknet.layers._utils import dense
from keras_masknet.layers._utils import derive_initializer
from keras_masknet.layers._utils import relu
from keras_masknet.layers._utils import serialize_activation

#: LayerNorm epsilon of the reference (PyTorch's default).
LAYER_NORM_EPSILON = 1e-5
#: What `reduction_factor` may multiply: the mask input's width (the
#: reference) or the masked layer's width (the paper's r).
REDUCTION_FACTOR_BASES = ("mask_input", "inputs")


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
    reference, and taken from the width of the mask input (which differs from
    the masked layer's width in a serial MaskNet). With
    `reduction_factor_base="inputs"` it is `int(input_dim * reduction_factor)`
    instead: the paper's reduction ratio r, relative to the masked layer.

    Options from the paper and other public implementations (each off by
    default, so the defaults stay the reference's):

    ```
    mask   = W2 @ ReLU(W1 @ (P @ mask_input) + b1) + b2  # P: optional
    output = Dropout(act(LayerNorm(W3 @ (net * mask) [+ b3])))
    ```

    - `output_activation`: `act` above, any Keras activation. The paper's
      block is `ReLU(LN(W x))` (also FuxiCTR, EasyRec, TorchEasyRec).
    - `reduction_factor_base="inputs"`: r relative to the masked layer
      (the paper, FuxiCTR, TorchEasyRec).
    - `dropout_rate`: dropout after the activation, only in training
      (FuxiCTR's `net_dropout`).
    - `use_hidden_bias=False`: no `b3`, as in the paper's equations
      (FuxiCTR, EasyRec).
    - `mask_projection_dim`: a bias-free projection `P` of that width before
      the mask's first dense layer, making `W1 @ P` low-rank (EasyRec's
      `projection_dim`); the aggregation width is computed as without it.

    Mixed precision: under a `mixed_float16` or `mixed_bfloat16` policy the
    dense layers and the product `net * mask` run in the low dtype, the weights
    stay float32 and both LayerNorms normalize in float32. In float16 (largest
    value about 65504) the product of input and mask is where overflow happens
    first, then the hidden projection of that product: with inputs beyond
    about `|x| > 10` or untrained, large masks, set `input_layer_norm=True` or
    use `mixed_bfloat16`, which has float32's range.

    Args:
        output_size: Width of the block's output. Must be positive.
        reduction_factor: Aggregation width as a multiple of the mask
            input's width. Must be positive and finite, and give a
            truncated width of at least 1.
        aggregation_size: Width of the mask's hidden layer.
        input_layer_norm: Whether to apply LayerNorm to `inputs` before
            they are masked (the mask input stays raw).
        kernel_initializer: Initializer for the three dense kernels (the
            default is the reference's Xavier-uniform).
        bias_initializer: Initializer for the three dense biases.
        kernel_regularizer: Regularizer for the dense kernels, if any.
        bias_regularizer: Regularizer for the dense biases, if any.
        output_activation: Activation after the output LayerNorm: a name
            (`"relu"`), a Keras activation function, or `None` for none (the
            reference). The paper uses `"relu"`.
        reduction_factor_base: What `reduction_factor` multiplies:
            `"mask_input"`, the mask input's width (the reference, EasyRec),
            or `"inputs"`, the masked layer's width (the paper's r, FuxiCTR,
            TorchEasyRec). Only valid with `reduction_factor`.
        dropout_rate: Dropout after the output activation, in `[0, 1)`,
            active only in training (FuxiCTR). 0 is none.
        use_hidden_bias: Whether the hidden dense layer `W3` has a bias, as
            in the reference. The paper's equations have none.
        mask_projection_dim: Width of a bias-free projection of the mask
            input before the mask's first dense layer (EasyRec's low-rank
            `projection_dim`); `None` for none.
        **kwargs: Other `keras.layers.Layer` arguments (`name`, `dtype`,
            ...).

    Call arguments:
        inputs: The layer to mask, `(batch, input_dim)`.
        mask_input: The tensor the mask is computed from,
            `(batch, mask_input_dim)`; `None` for `inputs` itself.
        training: Whether dropout is active. Keras sets it in `fit`.
        return_mask: If true, return `{"output": output, "mask": mask}`,
            where `mask` is the instance-guided mask `(batch, input_dim)`.

    Input shape:
        - `inputs`: `(batch, input_dim)`.
        - `mask_input` (optional): `(batch, mask_input_dim)`.

    Output shape:
        `(batch, output_size)`; with `return_mask=True`, a dict of it and
        the mask, `(batch, input_dim)`.

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

    # The paper's block: r = 2 of the masked layer, no hidden bias, ReLU.
    block = keras_masknet.MaskBlock(
        output_size=8,
        reduction_factor=2.0,
        reduction_factor_base="inputs",
        use_hidden_bias=False,
        output_activation="relu",
    )
    out = block(x, mask_input=features, return_mask=True)
    assert block.aggregation_width == 24  # int(12 * 2.0)
    assert tuple(out["mask"].shape) == (4, 12)
    ```

    References:
        - [Wang et al., 2021, MaskNet](https://arxiv.org/abs/2102.07619).
        - Twitter's the-algorithm-ml, `projects/home/recap/model/mask_net.py`.
        - FuxiCTR, `model_zoo/MaskNet/src/MaskNet.py` (dropout, bias-free).
        - EasyRec, `easy_rec/python/layers/keras/mask_net.py`
          (`projection_dim`).
        - TorchEasyRec, `tzrec/modules/masknet.py`.
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
        output_activation: Any = None,
        reduction_factor_base: str = "mask_input",
        dropout_rate: float = 0.0,
        use_hidden_bias: bool = True,
        mask_projection_dim: int | None = None,
        **kwargs: Any,
    ) -> None:
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
        self.kernel_initializer = v.check_initializer(
            "kernel_initializer", kernel_initializer
        )
        self.bias_initializer = v.check_initializer(
            "bias_initializer", bias_initializer
        )
        self.kernel_regularizer = v.check_regularizer(
            "kernel_regularizer", kernel_regularizer
        )
        self.bias_regularizer = v.check_regularizer(
            "bias_regularizer", bias_regularizer
        )
        self.output_activation = v.check_activation(
            "output_activation", output_activation
        )
        self.reduction_factor_base = v.check_choice(
            "reduction_factor_base",
            reduction_factor_base,
            REDUCTION_FACTOR_BASES,
        )
        if reduction_factor_base != "mask_input" and reduction_factor is None:
            raise ValueError(
                "`reduction_factor_base` only applies with `reduction_factor`; "
                "`aggregation_size` is an absolute width. Received: "
                f"reduction_factor_base={reduction_factor_base!r}, "
                f"aggregation_size={aggregation_size!r}"
            )
        self.dropout_rate = v.check_rate("dropout_rate", dropout_rate)
        self.use_hidden_bias = v.check_bool("use_hidden_bias", use_hidden_bias)
        self.mask_projection_dim = v.check_optional_positive_int(
            "mask_projection_dim", mask_projection_dim
        )
        self.supports_masking = False
        self.dropout_layer = None
        if self.dropout_rate > 0:
            self.dropout_layer = keras.layers.Dropout(
                self.dropout_rate, dtype=self.dtype_policy, name="dropout"
            )
        # Set by build().
        self.input_dim: int | None = None
        self.mask_input_dim: int | None = None
        self.aggregation_width: int | None = None

    def aggregation_width_for(
        self, mask_input_dim: int, input_dim: int | None = None
    ) -> int:
        """The mask's hidden width for the given input widths.

        Args:
            mask_input_dim: Width of the mask input.
            input_dim: Width of the masked layer (`inputs`), used with
                `reduction_factor_base="inputs"`; `None` for
                `mask_input_dim` (the mask computed from the inputs).

        Raises:
            ValueError: if `reduction_factor` truncates the width to 0.
        """
        if self.aggregation_size is not None:
            return self.aggregation_size
        if self.reduction_factor_base == "inputs":
            base, what = input_dim or mask_input_dim, "masked layer (inputs)"
        else:
            base, what = mask_input_dim, "mask input"
        assert self.reduction_factor is not None  # one of the two is set
        width = int(base * self.reduction_factor)
        if width < 1:
            raise ValueError(
                "`reduction_factor` gives an aggregation width of "
                f"int({base} * {self.reduction_factor}) == {width} "
                f"for a {what} of width {base}; it must be at "
                f"least 1. Received: reduction_factor={self.reduction_factor}"
            )
        return width

    def _dense(self, units: int, name: str, **kwargs: Any) -> Any:
        salt = f"{self.name}/{name}"
        return keras.layers.Dense(
            units,
            kernel_initializer=derive_initializer(
                self.kernel_initializer, f"{salt}/kernel"
            ),
            bias_initializer=derive_initializer(
                self.bias_initializer, f"{salt}/bias"
            ),
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
        aggregation_width = self.aggregation_width_for(
            mask_input_dim, input_dim
        )

        # Every check passed: only now create the sublayers and weights.
        self.input_dim = input_dim
        self.mask_input_dim = mask_input_dim
        self.aggregation_width = aggregation_width
        batch = mask_input_shape[0]
        if self.input_layer_norm:
            self.input_norm = keras.layers.LayerNormalization(
                epsilon=LAYER_NORM_EPSILON,
                dtype=self.dtype_policy,
                name="input_layer_norm",
            )
            self.input_norm.build(inputs_shape)
        aggregation_input_shape = mask_input_shape
        if self.mask_projection_dim is not None:
            self.mask_low_rank = self._dense(
                self.mask_projection_dim,
                name="mask_low_rank_projection",
                use_bias=False,
            )
            self.mask_low_rank.build(mask_input_shape)
            aggregation_input_shape = (batch, self.mask_projection_dim)
        # The ReLU is applied in `compute_mask_values` (NaN-preserving).
        self.mask_aggregation = self._dense(
            aggregation_width, name="mask_aggregation"
        )
        self.mask_aggregation.build(aggregation_input_shape)
        self.mask_projection = self._dense(input_dim, name="mask_projection")
        self.mask_projection.build((batch, aggregation_width))
        self.hidden = self._dense(
            self.output_size, name="hidden", use_bias=self.use_hidden_bias
        )
        self.hidden.build(inputs_shape)
        self.output_norm = keras.layers.LayerNormalization(
            epsilon=LAYER_NORM_EPSILON,
            dtype=self.dtype_policy,
            name="layer_norm",
        )
        self.output_norm.build((inputs_shape[0], self.output_size))
        # Keras checks `inputs` against this in `__call__`, also on symbolic
        # inputs, so a functional model on another width fails when built.
        self.input_spec = keras.InputSpec(ndim=2, axes={-1: input_dim})

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
        return self._mask(mask_input, direct=False)

    def _mask(self, mask_input: Any, direct: bool) -> Any:
        # `direct`: inside `call`, where the inputs are converted and the
        # autocast scope is entered already (see `_utils.dense`).
        def apply(layer: Any, x: Any) -> Any:
            return dense(layer, x, self) if direct else layer(x)

        if self.mask_projection_dim is not None:
            mask_input = apply(self.mask_low_rank, mask_input)
        hidden = relu(apply(self.mask_aggregation, mask_input))
        return apply(self.mask_projection, hidden)

    def call(
        self,
        inputs: Any,
        mask_input: Any = None,
        training: bool | None = None,
        return_mask: bool = False,
    ) -> Any:
        if mask_input is None:
            mask_input = inputs
        self._check_call_shapes(inputs, mask_input)
        net = inputs
        if self.input_layer_norm:
            net = call_sublayer(self.input_norm, self, inputs)
        mask = self._mask(mask_input, direct=True)
        hidden = dense(self.hidden, ops.multiply(net, mask), self)
        output = call_sublayer(self.output_norm, self, hidden)
        output = self.output_activation(output)
        if self.dropout_layer is not None:
            output = self.dropout_layer(output, training=training)
        if return_mask:
            return {"output": output, "mask": mask}
        return output

    def compute_output_shape(
        self, inputs_shape: Any, mask_input_shape: Any = None
    ) -> tuple[Any, ...]:
        return (tuple(inputs_shape)[0], self.output_size)

    def compute_output_spec(
        self,
        inputs: Any,
        mask_input: Any = None,
        training: bool | None = None,
        return_mask: bool = False,
    ) -> Any:
        if mask_input is not None and self.built:
            self._check_call_shapes(inputs, mask_input)
        batch = tuple(inputs.shape)[0]
        output = keras.KerasTensor(
            (batch, self.output_size), dtype=self.compute_dtype
        )
        if not return_mask:
            return output
        mask = keras.KerasTensor(
            (batch, tuple(inputs.shape)[-1]), dtype=self.compute_dtype
        )
        return {"output": output, "mask": mask}

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
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
                "output_activation": serialize_activation(
                    self.output_activation
                ),
                "reduction_factor_base": self.reduction_factor_base,
                "dropout_rate": self.dropout_rate,
                "use_hidden_bias": self.use_hidden_bias,
                "mask_projection_dim": self.mask_projection_dim,
            }
        )
        return config
