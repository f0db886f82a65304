"""Migration from the reference PyTorch implementation: weights by name.

The reference (Twitter's open-sourced home-timeline ranker) stores a MaskNet
as a PyTorch `state_dict`. This module maps its keys onto the variables of a
built `MaskNet`, `MaskBlock` or `MLP`, in both directions. It never imports
torch: tensors are read through `numpy.asarray`.
"""

from collections.abc import Iterator
from collections.abc import Mapping
from typing import Any
from typing import NamedTuple

import keras
import numpy as np

from keras_masknet.layers.mask_block import MaskBlock
from keras_masknet.layers.mask_net import MaskNet
from keras_masknet.layers.mlp import MLP


class _Entry(NamedTuple):
    key: str
    variable: Any
    transpose: bool


# PyTorch buffers that have no Keras counterpart: accepted, and ignored.
_IGNORED_SUFFIXES = (".num_batches_tracked",)


def _linear(key: str, dense: Any) -> Iterator[_Entry]:
    yield _Entry(f"{key}.weight", dense.kernel, True)
    yield _Entry(f"{key}.bias", dense.bias, False)


def _layer_norm(key: str, norm: Any) -> Iterator[_Entry]:
    yield _Entry(f"{key}.weight", norm.gamma, False)
    yield _Entry(f"{key}.bias", norm.beta, False)


def _no_reference_counterpart(layer: Any, option: str) -> ValueError:
    return ValueError(
        f"Layer '{layer.name}' uses `{option}`, which the reference MaskNet "
        "does not have: its weights have no reference state_dict "
        "counterpart, so they can be neither loaded from nor exported to "
        "one. Use `.keras` files or `get_weights()`/`set_weights()` instead."
    )


def _check_reference_structure(layer: Any) -> None:
    """Refuse the options that change the weights away from the reference's.

    Options without new weights (output activation, dropout, reduction
    base, field inputs) map onto the reference's keys as they are.
    """
    blocks = [layer] if isinstance(layer, MaskBlock) else []
    if isinstance(layer, MaskNet):
        if layer.embedding_layer_norm:
            raise _no_reference_counterpart(layer, "embedding_layer_norm=True")
        blocks = layer.mask_block_layers
    for block in blocks:
        if not block.use_hidden_bias:
            raise _no_reference_counterpart(block, "use_hidden_bias=False")
        if block.mask_projection_dim is not None:
            raise _no_reference_counterpart(
                block, f"mask_projection_dim={block.mask_projection_dim}"
            )


def _mask_block_entries(block: MaskBlock, prefix: str) -> Iterator[_Entry]:
    if block.input_layer_norm:
        yield from _layer_norm(f"{prefix}_input_layer_norm", block.input_norm)
    yield from _linear(f"{prefix}_mask_layer.0", block.mask_aggregation)
    yield from _linear(f"{prefix}_mask_layer.2", block.mask_projection)
    yield from _linear(f"{prefix}_hidden_layer", block.hidden)
    yield from _layer_norm(f"{prefix}_layer_norm", block.output_norm)


def _mlp_entries(mlp: MLP, prefix: str) -> Iterator[_Entry]:
    # The reference numbers every module of its nn.Sequential: Linear,
    # BatchNorm1d, ReLU and Dropout each take an index.
    index = 0
    last = len(mlp.dense_layers) - 1
    for i, dense in enumerate(mlp.dense_layers):
        yield from _linear(f"{prefix}{index}", dense)
        index += 1
        if i == last:
            break
        if mlp.batch_norm_layers:
            norm = mlp.batch_norm_layers[i]
            assert mlp.batch_norm is not None
            if mlp.batch_norm["affine"]:
                yield from _layer_norm(f"{prefix}{index}", norm)
            yield _Entry(
                f"{prefix}{index}.running_mean", norm.moving_mean, False
            )
            yield _Entry(
                f"{prefix}{index}.running_var", norm.moving_variance, False
            )
            index += 1
        index += 1  # ReLU
        if mlp.dropout_layers:
            index += 1


def _entries(layer: Any) -> list[_Entry]:
    """The (key, variable) pairs of a layer; checks its type and that it is
    built first."""
    if not isinstance(layer, (MaskNet, MaskBlock, MLP)):
        raise TypeError(
            "`layer` must be a keras_masknet MaskNet, MaskBlock or MLP. "
            f"Received: layer={layer!r} of type {type(layer).__name__}"
        )
    _check_built(layer)
    _check_reference_structure(layer)
    if isinstance(layer, MaskNet):
        entries: list[_Entry] = []
        for i, block in enumerate(layer.mask_block_layers):
            entries += _mask_block_entries(block, f"_mask_blocks.{i}.")
        if layer.mlp_layer is not None:
            entries += _mlp_entries(layer.mlp_layer, "_dense_layers.layers.")
        return entries
    if isinstance(layer, MaskBlock):
        return list(_mask_block_entries(layer, ""))
    return list(_mlp_entries(layer, "layers."))


def _check_built(layer: Any) -> None:
    if not layer.built:
        raise ValueError(
            f"Layer '{layer.name}' is not built yet, so its weights do not "
            "exist. Build it first, e.g. `layer.build((None, input_dim))` or "
            "by calling it on an input of the right width."
        )


def reference_weight_names(layer: Any) -> list[str]:
    """The reference `state_dict` keys that a built `layer` takes, in order.

    Args:
        layer: a built `MaskNet`, `MaskBlock` or `MLP`.

    Returns:
        The keys, without any outer prefix. `num_batches_tracked` buffers of
        BatchNorm are not listed: the loader accepts and ignores them.
    """
    return [entry.key for entry in _entries(layer)]


def _to_numpy(key: str, value: Any) -> np.ndarray:
    try:
        return np.asarray(value)
    except (TypeError, RuntimeError) as error:
        raise TypeError(
            f"`state_dict[{key!r}]` could not be read as a NumPy array "
            f"({error}). Pass float32 CPU tensors, e.g. "
            "`{k: t.detach().float().cpu() for k, t in sd.items()}`. "
            f"Received: a value of type {type(value).__name__}"
        ) from None


def load_reference_weights(
    layer: Any, state_dict: Mapping[str, Any], prefix: str = ""
) -> None:
    """Copy a reference PyTorch `state_dict` into a built keras_masknet layer.

    Keys are those of the reference's `MaskNet` module (`_mask_blocks.{i}.`,
    `_dense_layers.layers.{j}.`), of a lone `MaskBlock` (no prefix), or of its
    `MLP` (`layers.{j}.`). PyTorch Linear weights `(out, in)` are transposed
    into Keras kernels `(in, out)`; BatchNorm running statistics become the
    moving statistics; `num_batches_tracked` is accepted and ignored.

    Every key and shape is checked before anything is assigned, so a failed
    load leaves the layer's weights as they were.

    Options of keras_masknet that add no weights (`output_activation`,
    `dropout_rate`, `reduction_factor_base`, field-embedding inputs,
    `return_masks`) load and export the same keys; the outputs then equal
    the reference's only with the reference's defaults. Options that change
    the weights (`use_hidden_bias=False`, `mask_projection_dim`,
    `embedding_layer_norm=True`) have no reference counterpart: both
    functions raise a `ValueError` naming the option.

    Args:
        layer: A built `MaskNet`, `MaskBlock` or `MLP` with the same
            configuration as the reference module.
        state_dict: Key to tensor or array. Values are read with
            `numpy.asarray`, so CPU torch tensors and NumPy arrays both work.
        prefix: Stripped from the keys first, e.g. `"_backbone."` for a
            MaskNet inside the reference's full model. Keys that do not start
            with it belong to other parts of that model and are ignored.

    Raises:
        TypeError: if `layer` is not one of the three layers, or `state_dict`
            is not a mapping.
        ValueError: if `layer` is not built, uses an option without a
            reference counterpart, no key starts with `prefix`, keys are
            missing or unexpected, or a shape differs.

    Example:

    ```python
    import numpy as np
    import keras_masknet

    block = keras_masknet.MaskBlock(output_size=4, aggregation_size=6)
    block.build((None, 5))
    state_dict = {  # as torch's `block.state_dict()` names them
        "_mask_layer.0.weight": np.ones((6, 5)),
        "_mask_layer.0.bias": np.zeros(6),
        "_mask_layer.2.weight": np.ones((5, 6)),
        "_mask_layer.2.bias": np.zeros(5),
        "_hidden_layer.weight": np.ones((4, 5)),
        "_hidden_layer.bias": np.zeros(4),
        "_layer_norm.weight": np.ones(4),
        "_layer_norm.bias": np.zeros(4),
    }
    keras_masknet.reference.load_reference_weights(block, state_dict)
    assert np.allclose(block.hidden.kernel.numpy(), 1.0)
    ```
    """
    entries = _entries(layer)
    if not isinstance(state_dict, Mapping):
        raise TypeError(
            "`state_dict` must be a mapping from key to tensor or array. "
            f"Received: state_dict of type {type(state_dict).__name__}"
        )
    if not isinstance(prefix, str):
        raise TypeError(f"`prefix` must be a str. Received: prefix={prefix!r}")
    _check_built(layer)

    given = {
        key[len(prefix) :]: value
        for key, value in state_dict.items()
        if isinstance(key, str) and key.startswith(prefix)
    }
    if not given:
        sample = list(state_dict)[:5]
        raise ValueError(
            f"No key of `state_dict` starts with prefix={prefix!r}. "
            f"Received keys (first 5 of {len(state_dict)}): {sample}"
        )

    expected = {entry.key: entry for entry in entries}
    missing = [key for key in expected if key not in given]
    unexpected = [
        prefix + key
        for key in given
        if key not in expected and not key.endswith(_IGNORED_SUFFIXES)
    ]
    if missing or unexpected:
        raise ValueError(
            f"`state_dict` does not match layer '{layer.name}'.\n"
            f"  Missing keys: {[prefix + k for k in missing]}\n"
            f"  Unexpected keys: {unexpected}\n"
            "Check that the layer was built with the reference's config "
            "(blocks, widths, input_layer_norm, MLP batch_norm/dropout) and "
            "the `prefix`."
        )

    arrays = {}
    mismatches = []
    for key, entry in expected.items():
        array = _to_numpy(prefix + key, given[key])
        if entry.transpose and array.ndim == 2:
            array = array.T
        want = tuple(entry.variable.shape)
        if tuple(array.shape) != want:
            torch_shape = want[::-1] if entry.transpose else want
            mismatches.append(
                f"{prefix + key}: expected shape {torch_shape}, "
                f"received {tuple(np.asarray(given[key]).shape)}"
            )
        arrays[key] = array
    if mismatches:
        raise ValueError(
            f"`state_dict` shapes do not match layer '{layer.name}':\n  "
            + "\n  ".join(mismatches)
        )
    for key, entry in expected.items():
        entry.variable.assign(
            arrays[key].astype(
                keras.backend.standardize_dtype(entry.variable.dtype)
            )
        )


def export_reference_weights(layer: Any) -> dict[str, np.ndarray]:
    """The weights of a built layer as a reference-style `state_dict`.

    The inverse of `load_reference_weights`: keys as the reference names them,
    Linear weights as PyTorch's `(out, in)`, NumPy arrays as values (wrap with
    `torch.from_numpy` to load into a reference module).

    Args:
        layer: a built `MaskNet`, `MaskBlock` or `MLP`.

    Returns:
        A dict from key to `numpy.ndarray`, without `num_batches_tracked`.

    Raises:
        ValueError: if `layer` is not built, or uses an option without a
            reference counterpart (see `load_reference_weights`).

    Example:

    ```python
    import keras_masknet

    net = keras_masknet.MaskNet(
        mask_blocks=[{"output_size": 8, "reduction_factor": 0.5}],
        mlp={"layer_sizes": [4]},
    )
    net.build((None, 10))
    state_dict = keras_masknet.reference.export_reference_weights(net)
    assert state_dict["_mask_blocks.0._mask_layer.0.weight"].shape == (5, 10)
    assert state_dict["_dense_layers.layers.0.weight"].shape == (4, 8)
    ```
    """
    out = {}
    for entry in _entries(layer):
        array = keras.ops.convert_to_numpy(entry.variable.value)
        out[entry.key] = array.T if entry.transpose else array
    return out
