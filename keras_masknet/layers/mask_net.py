"""The MaskNet layer: MaskBlocks in parallel or in series, then an MLP."""

import inspect
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from keras_masknet.layers import _validation as v
from keras_masknet.layers._utils import call_sublayer
from keras_masknet.layers.mask_block import LAYER_NORM_EPSILON
from keras_masknet.layers.mask_block import MaskBlock
from keras_masknet.layers.mlp import MLP


def _own_arguments(cls: type) -> tuple[str, ...]:
    """The named constructor arguments of `cls`, without `self`/`**kwargs`."""
    # (Not `inspect.signature(cls)`: Keras' Layer defines `__new__`.)
    init = getattr(cls, "__init__")
    params = inspect.signature(init).parameters.values()
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


def _is_shape(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(
        d is None or (isinstance(d, int) and not isinstance(d, bool))
        for d in value
    )


def parse_inputs_shape(inputs_shape: Any, layer_name: str) -> tuple[Any, ...]:
    """Check a MaskNet input shape; return `(kind, batch, field_dims)`.

    `kind` is `"dense"` for `(batch, features)` (one field), `"fields"` for
    field embeddings `(batch, num_fields, dim)` and `"field_list"` for a
    list of `(batch, dim_i)` shapes. Raises a `ValueError` naming the shape
    received if it is none of these or a width is unknown.
    """
    if (
        isinstance(inputs_shape, (list, tuple))
        and len(inputs_shape) > 0
        and all(isinstance(s, (list, tuple)) for s in inputs_shape)
    ):
        shapes = [tuple(s) for s in inputs_shape]
        for i, shape in enumerate(shapes):
            v.check_rank2_shape(f"inputs[{i}]", shape, layer_name)
            if shape[-1] == 0:
                raise ValueError(
                    f"Layer '{layer_name}' needs every field to have a "
                    f"positive width. Received: inputs[{i}].shape={shape}"
                )
        return "field_list", shapes[0][0], [int(s[-1]) for s in shapes]
    if not _is_shape(inputs_shape) or len(inputs_shape) not in (2, 3):
        raise ValueError(
            f"Layer '{layer_name}' expects `inputs` of rank 2 "
            "(batch, features), field embeddings of rank 3 "
            "(batch, num_fields, dim), or a non-empty list of rank-2 field "
            f"embeddings (batch, dim_i). Received: inputs.shape={inputs_shape}"
        )
    shape = tuple(inputs_shape)
    if len(shape) == 2:
        shape = v.check_rank2_shape("inputs", shape, layer_name)
        if shape[-1] == 0:
            raise ValueError(
                f"Layer '{layer_name}' needs `inputs` of positive width. "
                f"Received: inputs.shape={shape}"
            )
        return "dense", shape[0], [int(shape[-1])]
    if shape[1] is None or shape[2] is None or 0 in shape[1:]:
        raise ValueError(
            f"Layer '{layer_name}' needs the number of fields and the "
            "embedding width of 3-D `inputs` to be known and positive. "
            f"Received: inputs.shape={shape}"
        )
    return "fields", shape[0], [int(shape[2])] * int(shape[1])


def _describe(kind: str, field_dims: list[int]) -> str:
    if kind == "dense":
        return f"`inputs` of shape (batch, {field_dims[0]})"
    if kind == "fields":
        return (
            f"field embeddings of shape (batch, {len(field_dims)}, "
            f"{field_dims[0]}) ({len(field_dims)} fields of width "
            f"{field_dims[0]})"
        )
    return f"a list of {len(field_dims)} fields of widths {field_dims}"


@keras.saving.register_keras_serializable(package="keras_masknet")
class MaskNet(keras.layers.Layer):
    """MaskNet: MaskBlocks in parallel or in series, optionally an MLP head.

    Parallel (`use_parallel=True`, ParaMaskNet): every block masks the
    `inputs` with a mask computed from the `inputs`; the block outputs are
    concatenated in block order (width: the sum of their `output_size`).

    Serial (`use_parallel=False`, the default, SerMaskNet): block 0 masks the
    `inputs`, block `i` masks the output of block `i - 1`, and every block
    computes its mask from the original `inputs` (width: the last block's
    `output_size`). A `reduction_factor` is therefore relative to the width of
    the `inputs` in every block.

    If `mlp` is set, the `MLP` head is applied to that output. All of this is
    the backbone of Twitter's open-sourced home-timeline ranker ("the
    reference"), whose `mask_net_config` YAML mapping works as
    `MaskNet(**mask_net_config)`. Unlike the reference, a serial MaskNet with
    an MLP works, and an empty `mask_blocks` is a clear error.

    Field embeddings: besides a 2-D `(batch, features)` tensor, the layer
    takes field embeddings as one `(batch, num_fields, dim)` tensor or as a
    list of `(batch, dim_i)` tensors whose widths may differ. They are
    flattened (concatenated in field order) into `V_emb`, so without
    `embedding_layer_norm` a list of fields gives exactly the output of
    their concatenation.

    With `embedding_layer_norm=True` (the paper's LN-EMB), each field is
    normalized on its own, `V_norm = concat(LN_1(e_1), ..., LN_f(e_f))` with
    a LayerNorm (epsilon `1e-5`, own scale and offset) per field; a 2-D input
    is one field, so it is normalized as a whole (EasyRec, TorchEasyRec).
    The blocks then mask `V_norm` (block 0 in series, every block in
    parallel), and compute their masks from the raw `V_emb` as in the paper
    and FuxiCTR, or from `V_norm` with `normalize_mask_input=True` as in
    EasyRec.

    Block options (`output_activation`, `reduction_factor_base`,
    `dropout_rate`, `use_hidden_bias`, `mask_projection_dim`) are keys of
    the `mask_blocks` entries: see `MaskBlock`. `keras_masknet.presets`
    builds the paper's SerMaskNet and ParaMaskNet in one call.

    The reference returns `{"output": ..., "shared_layer": ...}` where
    `shared_layer` is the MaskBlocks' output before the MLP. Call with
    `return_shared_layer=True` to get that same mapping; by default the layer
    returns the `output` tensor alone.

    Args:
        mask_blocks: The blocks, in order: one mapping of `MaskBlock`
            arguments each (`output_size`, `reduction_factor` or
            `aggregation_size`, `input_layer_norm`, ...). Unknown keys are
            an error.
        mlp: The arguments of an `MLP` head after the blocks
            (`layer_sizes`, `batch_norm`, `dropout`, ...), or `None` for no
            head. Keys set to `None` take the defaults; unknown keys are an
            error.
        use_parallel: Parallel when true, serial when false (the
            reference's default).
        embedding_layer_norm: Whether to normalize each input field on its
            own before the blocks mask it (the paper's LN-EMB, FuxiCTR's
            `emb_layernorm`). The reference does not.
        normalize_mask_input: Whether the masks are computed from the
            normalized fields (EasyRec) instead of the raw ones (the paper,
            FuxiCTR). Needs `embedding_layer_norm=True`.
        **kwargs: Other `keras.layers.Layer` arguments (`name`, `dtype`,
            ...).

    Call arguments:
        inputs: A tensor, field embeddings or a list of fields (see Input
            shape), with the structure and widths the layer was built with.
        training: Whether BatchNorm and dropout (in the MLP and in the
            blocks) act in training mode. Keras sets it in `fit`.
        return_shared_layer: If true, return a dict with `"output"` and
            `"shared_layer"` (the blocks' output before the MLP), like the
            reference.
        return_masks: If true, return a dict with `"output"` and `"masks"`:
            the list of every block's instance-guided mask, in block order.
            Each is as wide as the layer its block masks: the flattened
            input, or in series from block 1 on the previous block's
            output.

    Input shape:
        - `(batch, features)`: one field of `features` values.
        - `(batch, num_fields, dim)`: `num_fields` field embeddings of
          width `dim`.
        - A list of `(batch, dim_i)` tensors: field embeddings whose widths
          may differ.

    Output shape:
        `(batch, width)`: `width` is `mlp["layer_sizes"][-1]` with an MLP,
        else the blocks' output width (the sum of their `output_size` in
        parallel, the last block's in series). With `return_shared_layer`
        or `return_masks`, a dict of such tensors (see Call arguments).

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

    # Fields of different widths, normalized one by one (LN-EMB); every
    # block's mask comes back with the output.
    fields = [np.ones((2, 4), "float32"), np.ones((2, 6), "float32")]
    net = keras_masknet.MaskNet(
        mask_blocks=[{"output_size": 8, "aggregation_size": 16}] * 2,
        embedding_layer_norm=True,
    )
    out = net(fields, return_masks=True)
    assert [tuple(m.shape) for m in out["masks"]] == [(2, 10), (2, 8)]
    ```

    References:
        - [Wang et al., 2021, MaskNet](https://arxiv.org/abs/2102.07619).
        - Twitter's the-algorithm-ml, `projects/home/recap/model/mask_net.py`.
        - FuxiCTR, `model_zoo/MaskNet/src/MaskNet.py` (per-field LN-EMB).
        - EasyRec, `easy_rec/python/layers/keras/mask_net.py` (mask from
          the normalized input).
    """

    def __init__(
        self,
        mask_blocks: Sequence[Mapping[str, Any]],
        mlp: Mapping[str, Any] | None = None,
        use_parallel: bool = False,
        embedding_layer_norm: bool = False,
        normalize_mask_input: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.mask_blocks = _normalize_mask_blocks(mask_blocks)
        self.mlp = _normalize_mlp(mlp)
        self.use_parallel = v.check_bool("use_parallel", use_parallel)
        self.embedding_layer_norm = v.check_bool(
            "embedding_layer_norm", embedding_layer_norm
        )
        self.normalize_mask_input = v.check_bool(
            "normalize_mask_input", normalize_mask_input
        )
        if self.normalize_mask_input and not self.embedding_layer_norm:
            raise ValueError(
                "`normalize_mask_input=True` needs `embedding_layer_norm=True`"
                " (without it there is nothing normalized to compute the "
                "masks from). Received: normalize_mask_input=True, "
                "embedding_layer_norm=False"
            )
        self.embedding_norms: list[Any] = []
        # Set by build().
        self.input_kind: str | None = None
        self.field_dims: list[int] | None = None
        self.input_dim: int | None = None
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

    def masked_widths(self, input_dim: int | None = None) -> list[int]:
        """Width of the layer each block masks (and of its mask), in order.

        Args:
            input_dim: The flattened input width; `None` for the width the
                layer was built with.
        """
        width = self.input_dim if input_dim is None else input_dim
        if width is None:
            raise ValueError(
                f"Layer '{self.name}' is not built yet: pass `input_dim` (the "
                "flattened input width) or build the layer first. Received: "
                "input_dim=None"
            )
        if self.use_parallel:
            return [width] * len(self.mask_block_layers)
        widths = [width]
        for block in self.mask_block_layers[:-1]:
            widths.append(block.output_size)
        return widths

    def build(self, inputs_shape: Any) -> None:
        kind, batch, field_dims = parse_inputs_shape(inputs_shape, self.name)
        input_dim = sum(field_dims)
        flat_shape = (batch, input_dim)
        # Check every block's width before building any of them, so that a
        # bad configuration leaves the layer without weights.
        for block, width in zip(
            self.mask_block_layers, self.masked_widths(input_dim)
        ):
            block.aggregation_width_for(input_dim, width)
        if self.embedding_layer_norm:
            self.embedding_norms = []
            for i, dim in enumerate(field_dims):
                norm = keras.layers.LayerNormalization(
                    epsilon=LAYER_NORM_EPSILON,
                    dtype=self.dtype_policy,
                    name=f"embedding_layer_norm_{i}",
                )
                norm.build((batch, dim))
                self.embedding_norms.append(norm)
        if self.use_parallel:
            for block in self.mask_block_layers:
                block.build(flat_shape, flat_shape)
        else:
            net_shape = flat_shape
            for block in self.mask_block_layers:
                block.build(net_shape, flat_shape)
                net_shape = (batch, block.output_size)
        if self.mlp_layer is not None:
            self.mlp_layer.build((batch, self.blocks_output_size))
        self.input_kind = kind
        self.field_dims = field_dims
        self.input_dim = input_dim

    def _fields(self, inputs: Any) -> tuple[Any, list[Any]]:
        """Check `inputs` against the built structure; return the flattened
        `V_emb` and the list of field tensors."""
        assert self.input_kind is not None and self.field_dims is not None
        built = _describe(self.input_kind, self.field_dims)
        if isinstance(inputs, (list, tuple)):
            widths = [tuple(x.shape)[-1] for x in inputs]
            for i, x in enumerate(inputs):
                v.check_rank2_shape(f"inputs[{i}]", tuple(x.shape), self.name)
            if self.input_kind != "field_list" or widths != self.field_dims:
                raise ValueError(
                    f"Layer '{self.name}' was built for {built}. Received: a "
                    f"list of {len(widths)} fields of widths {widths}"
                )
            batches = {tuple(x.shape)[0] for x in inputs} - {None}
            if len(batches) > 1:
                raise ValueError(
                    "Every field in `inputs` must have the same batch size. "
                    f"Received: shapes {[tuple(x.shape) for x in inputs]}"
                )
            fields = list(inputs)
            flat = (
                fields[0]
                if len(fields) == 1
                else ops.concatenate(fields, axis=-1)
            )
            return flat, fields
        shape = tuple(inputs.shape)
        if len(shape) == 3 and self.input_kind == "fields":
            if list(shape[1:]) != [len(self.field_dims), self.field_dims[0]]:
                raise ValueError(
                    f"Layer '{self.name}' was built for {built}. Received: "
                    f"inputs.shape={shape} ({shape[1]} fields of width "
                    f"{shape[2]})"
                )
            flat = ops.reshape(inputs, (-1, self.input_dim))
            fields = []
            if self.embedding_layer_norm:
                fields = [inputs[:, i, :] for i in range(shape[1])]
            return flat, fields
        if len(shape) == 2 and self.input_kind == "dense":
            if shape[-1] != self.input_dim:
                raise ValueError(
                    f"Layer '{self.name}' was built for `inputs` with last "
                    f"axis {self.input_dim}. Received: inputs.shape={shape}"
                )
            return inputs, [inputs]
        if len(shape) not in (2, 3):
            v.check_rank2_shape("inputs", shape, self.name)
        raise ValueError(
            f"Layer '{self.name}' was built for {built}. Received: "
            f"inputs.shape={shape}"
        )

    def call(
        self,
        inputs: Any,
        training: bool | None = None,
        return_shared_layer: bool = False,
        return_masks: bool = False,
    ) -> Any:
        flat, fields = self._fields(inputs)
        net_input = mask_input = flat
        if self.embedding_layer_norm:
            normed = [
                call_sublayer(norm, self, x)
                for norm, x in zip(self.embedding_norms, fields)
            ]
            net_input = (
                normed[0]
                if len(normed) == 1
                else ops.concatenate(normed, axis=-1)
            )
            if self.normalize_mask_input:
                mask_input = net_input
        masks = []
        if self.use_parallel:
            outputs = []
            for block in self.mask_block_layers:
                out = call_sublayer(
                    block,
                    self,
                    net_input,
                    mask_input=mask_input,
                    training=training,
                    return_mask=return_masks,
                )
                if return_masks:
                    masks.append(out["mask"])
                    out = out["output"]
                outputs.append(out)
            net = (
                outputs[0]
                if len(outputs) == 1
                else ops.concatenate(outputs, axis=-1)
            )
        else:
            net = net_input
            for block in self.mask_block_layers:
                net = call_sublayer(
                    block,
                    self,
                    net,
                    mask_input=mask_input,
                    training=training,
                    return_mask=return_masks,
                )
                if return_masks:
                    masks.append(net["mask"])
                    net = net["output"]
        shared_layer = net
        if self.mlp_layer is not None:
            net = call_sublayer(self.mlp_layer, self, net, training=training)
        if not (return_shared_layer or return_masks):
            return net
        result = {"output": net}
        if return_shared_layer:
            result["shared_layer"] = shared_layer
        if return_masks:
            result["masks"] = masks
        return result

    def compute_output_shape(self, inputs_shape: Any) -> tuple[Any, ...]:
        _, batch, _ = parse_inputs_shape(inputs_shape, self.name)
        return (batch, self.output_size)

    def compute_output_spec(
        self,
        inputs: Any,
        training: bool | None = None,
        return_shared_layer: bool = False,
        return_masks: bool = False,
    ) -> Any:
        if self.built:
            # The checks of `call`, on symbolic inputs too: a functional
            # model on inputs unlike the built ones fails when it is built,
            # naming the layer, the structure built for and the one given.
            self._fields(inputs)
        batch = tuple(keras.tree.flatten(inputs)[0].shape)[0]
        output = keras.KerasTensor(
            (batch, self.output_size), dtype=self.compute_dtype
        )
        if not (return_shared_layer or return_masks):
            return output
        result = {"output": output}
        if return_shared_layer:
            result["shared_layer"] = keras.KerasTensor(
                (batch, self.blocks_output_size), dtype=self.compute_dtype
            )
        if return_masks:
            result["masks"] = [
                keras.KerasTensor((batch, width), dtype=self.compute_dtype)
                for width in self.masked_widths()
            ]
        return result

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
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
                "embedding_layer_norm": self.embedding_layer_norm,
                "normalize_mask_input": self.normalize_mask_input,
            }
        )
        return config
