"""The MLP head of a MaskNet, usable on its own."""

from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_masknet.layers import _validation as v
from keras_masknet.layers._utils import dense as apply_dense
from keras_masknet.layers._utils import derive_initializer
from keras_masknet.layers._utils import relu

#: BatchNorm epsilon of the reference (PyTorch's default).
BATCH_NORM_EPSILON = 1e-5

BATCH_NORM_KEYS = ("affine", "momentum")
DROPOUT_KEYS = ("rate",)
_BATCH_NORM_DEFAULTS = {"affine": True, "momentum": 0.1}
_DROPOUT_DEFAULTS = {"rate": 0.1}


def normalize_batch_norm(value: Any) -> dict[str, Any] | None:
    """Validate an MLP `batch_norm` mapping and fill in its defaults.

    `None` means no batch normalization. Missing keys and keys set to `None`
    take the reference's defaults (`affine=True`, `momentum=0.1`).
    """
    if value is None:
        return None
    value = v.check_mapping("batch_norm", value, BATCH_NORM_KEYS)
    out = {
        k: value[k] if value.get(k) is not None else d
        for k, d in _BATCH_NORM_DEFAULTS.items()
    }
    out["affine"] = v.check_bool("batch_norm.affine", out["affine"])
    momentum = out["momentum"]
    if not v._is_real(momentum):
        raise TypeError(
            "`batch_norm.momentum` must be a number in (0, 1] (PyTorch's "
            f"convention). Received: momentum={momentum!r} of type "
            f"{type(momentum).__name__}"
        )
    if not (0.0 < momentum <= 1.0):
        raise ValueError(
            "`batch_norm.momentum` must be in (0, 1] (PyTorch's convention: "
            f"the weight of the new batch). Received: momentum={momentum!r}"
        )
    out["momentum"] = float(momentum)
    return out


def normalize_dropout(value: Any) -> dict[str, Any] | None:
    """Validate an MLP `dropout` mapping and fill in its default rate (0.1)."""
    if value is None:
        return None
    value = v.check_mapping("dropout", value, DROPOUT_KEYS)
    rate = value.get("rate")
    rate = _DROPOUT_DEFAULTS["rate"] if rate is None else rate
    return {"rate": v.check_rate("dropout.rate", rate)}


def normalize_layer_sizes(value: Any) -> list[int]:
    """Validate `layer_sizes`: a non-empty list of positive ints.

    A 1-D NumPy integer array is accepted too; the result is a list of
    Python ints (JSON-serializable in `get_config`).
    """
    if isinstance(value, np.ndarray) and value.ndim == 1:
        value = value.tolist()
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(
            "`layer_sizes` must be a non-empty list of positive integers. "
            f"Received: layer_sizes={value!r}"
        )
    if len(value) == 0:
        raise ValueError(
            "`layer_sizes` must be a non-empty list of positive integers. "
            f"Received: layer_sizes={list(value)!r}"
        )
    return [
        v.check_positive_int(f"layer_sizes[{i}]", size)
        for i, size in enumerate(value)
    ]


@keras.saving.register_keras_serializable(package="keras_masknet")
class MLP(keras.layers.Layer):
    """The reference's MLP head: dense layers with optional BatchNorm/dropout.

    For `layer_sizes = [s_1, ..., s_n]` the layer computes

    ```
    for s in s_1 ... s_{n-1}:
        x = Dense(s)(x) -> [BatchNorm] -> ReLU -> [Dropout]
    x = Dense(s_n)(x) -> [ReLU if final_layer_activation]
    ```

    with Glorot-uniform kernels and zero biases, as in Twitter's open-sourced
    home-timeline ranker ("the reference"). The arguments take the reference's
    config names and meanings, so a reference `mlp` YAML mapping works as
    `MLP(**mlp_config)`; keys set to `None` take the defaults.

    BatchNorm follows PyTorch's `BatchNorm1d`: epsilon `1e-5`, and `momentum`
    in PyTorch's convention (the weight of the new batch statistic, default
    `0.1`), which is Keras' `1 - momentum`. While training both normalize with
    the batch mean and biased batch variance, so outputs agree; PyTorch then
    updates its running variance with the unbiased batch variance
    (`n / (n - 1)` times larger) while Keras uses the biased one, so moving
    variances drift apart slowly during training (running means agree).
    BatchNorm always computes in float32, also under mixed precision.

    Args:
        layer_sizes: Widths of the dense layers, in order.
        batch_norm: A mapping with the keys `"affine"` (a bool) and
            `"momentum"` (a float) adds BatchNorm after each hidden dense
            layer; `affine=False` drops its scale and offset (the moving
            statistics remain). `None` for no BatchNorm.
        dropout: A mapping `{"rate": r}` adds dropout of rate `r` after each
            hidden ReLU, active only in training. `None` for none.
        final_layer_activation: Whether a ReLU follows the last dense
            layer.
        kernel_initializer: Initializer for the dense kernels.
        bias_initializer: Initializer for the dense biases.
        **kwargs: Other `keras.layers.Layer` arguments (`name`, `dtype`,
            ...).

    Call arguments:
        inputs: The features, `(batch, features)`, as wide as the layer was
            built for.
        training: Whether BatchNorm and dropout act in training mode. Keras
            sets it in `fit`.

    Input shape:
        `(batch, features)`.

    Output shape:
        `(batch, layer_sizes[-1])`.

    Example:

    ```python
    import numpy as np
    import keras_masknet

    head = keras_masknet.MLP(
        layer_sizes=[32, 16],
        batch_norm={"affine": True, "momentum": 0.1},
        dropout={"rate": 0.2},
        final_layer_activation=True,
    )
    y = head(np.random.rand(8, 20).astype("float32"), training=False)
    assert tuple(y.shape) == (8, 16)
    ```

    References:
        - Twitter's the-algorithm-ml, `projects/home/recap/model/mlp.py`.
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        batch_norm: Mapping[str, Any] | None = None,
        dropout: Mapping[str, Any] | None = None,
        final_layer_activation: bool = False,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.layer_sizes = normalize_layer_sizes(layer_sizes)
        self.batch_norm = normalize_batch_norm(batch_norm)
        self.dropout = normalize_dropout(dropout)
        self.final_layer_activation = v.check_bool(
            "final_layer_activation",
            False if final_layer_activation is None else final_layer_activation,
        )
        self.kernel_initializer = v.check_initializer(
            "kernel_initializer", kernel_initializer
        )
        self.bias_initializer = v.check_initializer(
            "bias_initializer", bias_initializer
        )

        n = len(self.layer_sizes)
        self.dense_layers = [
            keras.layers.Dense(
                size,
                kernel_initializer=derive_initializer(
                    self.kernel_initializer, f"{self.name}/dense_{i}/kernel"
                ),
                bias_initializer=derive_initializer(
                    self.bias_initializer, f"{self.name}/dense_{i}/bias"
                ),
                dtype=self.dtype_policy,
                name=f"dense_{i}",
            )
            for i, size in enumerate(self.layer_sizes)
        ]
        self.batch_norm_layers = []
        if self.batch_norm is not None:
            affine = self.batch_norm["affine"]
            self.batch_norm_layers = [
                keras.layers.BatchNormalization(
                    momentum=1.0 - self.batch_norm["momentum"],
                    epsilon=BATCH_NORM_EPSILON,
                    center=affine,
                    scale=affine,
                    dtype=self.dtype_policy,
                    name=f"batch_norm_{i}",
                )
                for i in range(n - 1)
            ]
        self.dropout_layers = []
        if self.dropout is not None:
            self.dropout_layers = [
                keras.layers.Dropout(
                    self.dropout["rate"],
                    dtype=self.dtype_policy,
                    name=f"dropout_{i}",
                )
                for i in range(n - 1)
            ]

    def build(self, inputs_shape: Any) -> None:
        inputs_shape = v.check_rank2_shape("inputs", inputs_shape, self.name)
        shape = inputs_shape
        for i, dense in enumerate(self.dense_layers):
            dense.build(shape)
            shape = (shape[0], self.layer_sizes[i])
            if self.batch_norm_layers and i < len(self.batch_norm_layers):
                self.batch_norm_layers[i].build(shape)
        self.input_dim = int(inputs_shape[-1])
        self.input_spec = keras.InputSpec(ndim=2, axes={-1: self.input_dim})

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        shape = tuple(inputs.shape)
        v.check_rank2_shape("inputs", shape, self.name)
        if shape[-1] != self.input_dim:
            raise ValueError(
                f"Layer '{self.name}' was built for `inputs` with last axis "
                f"{self.input_dim}. Received: inputs.shape={shape}"
            )
        x = inputs
        last = len(self.dense_layers) - 1
        for i, dense in enumerate(self.dense_layers):
            x = apply_dense(dense, x, self)
            if i < last:
                if self.batch_norm_layers:
                    x = self._batch_norm(i, x, training)
                x = relu(x)
                if self.dropout_layers:
                    x = self.dropout_layers[i](x, training=training)
            elif self.final_layer_activation:
                x = relu(x)
        return x

    def _batch_norm(self, i: int, x: Any, training: bool | None) -> Any:
        """BatchNorm `i`, leaving the moving statistics as they are on an
        empty training batch (its mean and variance are NaN: they would
        turn the moving statistics into NaN for good)."""
        norm = self.batch_norm_layers[i]
        if not training:
            return norm(x, training=training)
        batch = ops.shape(x)[0]
        if isinstance(batch, int):  # known: eager, JAX, PyTorch
            return norm(x, training=batch > 0)
        # Unknown until run (a TensorFlow graph): keep the old statistics
        # where the batch was empty.
        moving = (norm.moving_mean, norm.moving_variance)
        before = [ops.copy(var) for var in moving]  # values, not refs
        x = norm(x, training=training)
        for var, old in zip(moving, before):
            var.assign(ops.where(batch > 0, var, old))
        return x

    def compute_output_shape(self, inputs_shape: Any) -> tuple[Any, ...]:
        return (tuple(inputs_shape)[0], self.layer_sizes[-1])

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update(
            {
                "layer_sizes": list(self.layer_sizes),
                "batch_norm": None
                if self.batch_norm is None
                else dict(self.batch_norm),
                "dropout": None if self.dropout is None else dict(self.dropout),
                "final_layer_activation": self.final_layer_activation,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(
                    self.bias_initializer
                ),
            }
        )
        return config
