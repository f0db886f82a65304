"""The MaskNet layer: MaskBlocks in parallel or in series, then an MLP."""

import inspect
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from keras_masknet.layers import _validation as v
from keras_masknet.layers.mask_block import MaskBlock
from keras_masknet.layers.mlp import MLP


def _own_arguments(cls: type) -> tuple[str, ...]:
    """The named constructor arguments of `cls`, without `self`/`**kwargs`."""
    params = inspect.signature(cls.__init__).parameters.values()
    return tuple(
        p.name
        for p in params
        if p.name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD
    )


#: Keys a `mask_blocks` entry may have: MaskBlock's own arguments.
MASK_BLOCK_KEYS = _own_arguments(MaskBlock)
#: Keys the `mlp` mapping may have: MLP's own arguments.
MLP_KEYS = _own_arguments(MLP)


def _normalize_mask_blocks(mask_blocks: Any) -> list[dict[str, Any]]:
    if (
        isinstance(mask_blocks, Mapping)
        or not isinstance(mask_blocks, Sequence)
        or isinstance(mask_blocks, (str, bytes))
    ):
        raise TypeError(
            "`mask_blocks` must be a non-empty list of mappings of MaskBlock "
            f"arguments. Received: mask_blocks={mask_blocks!r}"
        )
    if len(mask_blocks) == 0:
        raise ValueError(
            "`mask_blocks` must be a non-empty list of mappings of MaskBlock "
            "arguments; a MaskNet needs at least one block. "
            f"Received: mask_blocks={list(mask_blocks)!r}"
        )
    return [
        v.check_mapping(f"mask_blocks[{i}]", block, MASK_BLOCK_KEYS)
        for i, block in enumerate(mask_blocks)
    ]


def _normalize_mlp(mlp: Any) -> dict[str, Any] | None:
    if mlp is None:
        return None
    mlp = v.check_mapping("mlp", mlp, MLP_KEYS)
    if mlp.get("layer_sizes") is None:
        raise ValueError(
            "`mlp` must have the key `layer_sizes` (a non-empty list of "
            f"positive integers). Received: mlp={mlp!r}"
        )
    # Keys set to None (null in YAML) take the defaults, as in the reference.
    return {k: val for k, val in mlp.items() if val is not None}


@keras.saving.register_keras_serializable(package="keras_masknet")
class MaskNet(keras.layers.Layer):
    """MaskNet: MaskBlocks in parallel or in series, optionally an MLP head.

    Parallel (`use_parallel=True`, ParaMaskNet): every block masks the
    `inputs` with a mask computed from the `inputs`; the block outputs are
    concatenated in block order (width: the sum of their `output_size`).

    Serial (`use_parallel=False`, the default, SerMaskNet): block 0 masks the
    `inputs`, block `i` masks the output of block `i - 1`, and EVERY block
    computes its mask from the ORIGINAL `inputs` (width: the last block's
    `output_size`). A `reduction_factor` is therefore relative to the width of
    the `inputs` in every block.

    If `mlp` is set, the `MLP` head is applied to that output. All of this is
    the backbone of Twitter's open-sourced home-timeline ranker ("the
    reference"), whose `mask_net_config` YAML mapping works as
    `MaskNet(**mask_net_config)`. Unlike the reference, a serial MaskNet with
    an MLP works, and an empty `mask_blocks` is a clear error.

    The reference returns `{"output": ..., "shared_layer": ...}` where
    `shared_layer` is the MaskBlocks' output before the MLP. Call with
    `return_shared_layer=True` to get that same mapping; by default the layer
    returns the `output` tensor alone.

    Args:
        mask_blocks: list of mappings. Each holds `MaskBlock` arguments
            (`output_size`, one of `reduction_factor`/`aggregation_size`,
            `input_layer_norm`, ...). Unknown keys are an error.
        mlp: mapping or None. `MLP` arguments (`layer_sizes`, `batch_norm`,
            `dropout`, `final_layer_activation`); keys set to `None` take the
            defaults and unknown keys are an error. Defaults to `None`.
        use_parallel: bool. Parallel when `True`, serial when `False`.
            Defaults to `False`, as in the reference.
        **kwargs: other `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: tensor of shape `(batch, features)`.
        training: bool. Whether BatchNorm and dropout in the MLP act in
            training mode. Keras sets it in `fit`.
        return_shared_layer: bool. If `True`, return
            `{"output": output, "shared_layer": blocks_output}` like the
            reference. Defaults to `False`.

    Output shape:
        `(batch, width)`, where `width` is `mlp["layer_sizes"][-1]` with an
        MLP, else the blocks' output width (see above).

    Example:

    ```python
    import numpy as np
    import keras
    import keras_masknet

    inputs = keras.Input(shape=(64,))
    backbone = keras_masknet.MaskNet(
        mask_blocks=[{"output_size": 32, "aggregation_size": 64}] * 3,
        mlp={"layer_sizes": [48, 16], "final_layer_activation": True},
        use_parallel=True,
    )
    outputs = keras.layers.Dense(1, activation="sigmoid")(backbone(inputs))
    model = keras.Model(inputs, outputs)
    assert model.predict(np.ones((2, 64)), verbose=0).shape == (2, 1)

    out = backbone(np.ones((2, 64), "float32"), return_shared_layer=True)
    assert tuple(out["shared_layer"].shape) == (2, 96)  # 3 blocks x 32
    assert tuple(out["output"].shape) == (2, 16)
    ```

    References:
        - [Wang et al., 2021, MaskNet](https://arxiv.org/abs/2102.07619).
        - Twitter's the-algorithm-ml, `projects/home/recap/model/mask_net.py`.
    """

    def __init__(
        self,
        mask_blocks: Sequence[Mapping[str, Any]],
        mlp: Mapping[str, Any] | None = None,
        use_parallel: bool = False,
        **kwargs: Any,
    ) -> None:
        v.check_unknown_kwargs(type(self).__name__, kwargs)
        super().__init__(**kwargs)
        self.mask_blocks = _normalize_mask_blocks(mask_blocks)
        self.mlp = _normalize_mlp(mlp)
        self.use_parallel = v.check_bool("use_parallel", use_parallel)
        # Sublayers validate their own arguments here, before any weight.
        self.mask_block_layers = [
            MaskBlock(**cfg, dtype=self.dtype_policy, name=f"mask_block_{i}")
            for i, cfg in enumerate(self.mask_blocks)
        ]
        self.mlp_layer = (
            None
            if self.mlp is None
            else MLP(**self.mlp, dtype=self.dtype_policy, name="mlp")
        )

    @property
    def blocks_output_size(self) -> int:
        """Width of the MaskBlocks' output (the reference's shared layer)."""
        if self.use_parallel:
            return sum(b.output_size for b in self.mask_block_layers)
        return self.mask_block_layers[-1].output_size

    @property
    def output_size(self) -> int:
        """Width of the layer's output."""
        if self.mlp_layer is not None:
            return self.mlp_layer.layer_sizes[-1]
        return self.blocks_output_size

    def build(self, inputs_shape: Any) -> None:
        inputs_shape = v.check_rank2_shape("inputs", inputs_shape, self.name)
        # Check every block's width before building any of them, so that a
        # bad configuration leaves the layer without weights.
        mask_input_dim = int(inputs_shape[-1])
        for block in self.mask_block_layers:
            block.aggregation_width_for(mask_input_dim)
        batch = inputs_shape[0]
        if self.use_parallel:
            for block in self.mask_block_layers:
                block.build(inputs_shape)
        else:
            net_shape = inputs_shape
            for block in self.mask_block_layers:
                block.build(net_shape, inputs_shape)
                net_shape = (batch, block.output_size)
        if self.mlp_layer is not None:
            self.mlp_layer.build((batch, self.blocks_output_size))
        self.input_dim = mask_input_dim

    def call(
        self,
        inputs: Any,
        training: bool | None = None,
        return_shared_layer: bool = False,
    ) -> Any:
        shape = tuple(inputs.shape)
        v.check_rank2_shape("inputs", shape, self.name)
        if shape[-1] != self.input_dim:
            raise ValueError(
                f"Layer '{self.name}' was built for `inputs` with last axis "
                f"{self.input_dim}. Received: inputs.shape={shape}"
            )
        if self.use_parallel:
            outputs = [block(inputs) for block in self.mask_block_layers]
            net = (
                outputs[0]
                if len(outputs) == 1
                else ops.concatenate(outputs, axis=-1)
            )
        else:
            net = inputs
            for block in self.mask_block_layers:
                net = block(net, mask_input=inputs)
        shared_layer = net
        if self.mlp_layer is not None:
            net = self.mlp_layer(net, training=training)
        if return_shared_layer:
            return {"output": net, "shared_layer": shared_layer}
        return net

    def compute_output_shape(self, inputs_shape: Any) -> tuple:
        return (tuple(inputs_shape)[0], self.output_size)

    def compute_output_spec(
        self,
        inputs: Any,
        training: bool | None = None,
        return_shared_layer: bool = False,
    ) -> Any:
        batch = tuple(inputs.shape)[0]
        output = keras.KerasTensor(
            (batch, self.output_size), dtype=self.compute_dtype
        )
        if not return_shared_layer:
            return output
        shared = keras.KerasTensor(
            (batch, self.blocks_output_size), dtype=self.compute_dtype
        )
        return {"output": output, "shared_layer": shared}

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        block_configs = []
        for block in self.mask_block_layers:
            full = block.get_config()
            block_configs.append({k: full[k] for k in MASK_BLOCK_KEYS})
        mlp_config = None
        if self.mlp_layer is not None:
            full = self.mlp_layer.get_config()
            mlp_config = {k: full[k] for k in MLP_KEYS}
        config.update(
            {
                "mask_blocks": block_configs,
                "mlp": mlp_config,
                "use_parallel": self.use_parallel,
            }
        )
        return config
