"""Sharding MaskNet's large kernels with `keras.distribution.ModelParallel`.

`mask_net_layout_map` returns the `keras.distribution.LayoutMap` that splits
the big kernels of every MaskBlock (and of the MLP head) across the `model`
axis of a device mesh, in the column-then-row pattern of Megatron-style
tensor parallelism. Everything else stays replicated. Only the JAX backend
of Keras runs `ModelParallel` today; building the map works on any backend.
"""

import keras

#: Regex of a MaskBlock's path component: `mask_block` (a MaskBlock on its
#: own) and `mask_block_0`, `mask_block_1`, ... (the blocks of a MaskNet).
DEFAULT_BLOCK_PATTERN = r"mask_block[^/]*"
#: Regex of the MLP head's path component inside a MaskNet (`mlp`).
DEFAULT_MLP_PATTERN = r"mlp[^/]*"


def mask_net_layout_map(
    device_mesh: keras.distribution.DeviceMesh,
    model_axis: str = "model",
    *,
    block_pattern: str = DEFAULT_BLOCK_PATTERN,
    mlp_pattern: str | None = DEFAULT_MLP_PATTERN,
) -> keras.distribution.LayoutMap:
    """A `LayoutMap` that shards MaskNet's mask, hidden and MLP kernels.

    For `keras.distribution.ModelParallel`. Variables are matched by their
    `variable.path` (print `[w.path for w in model.weights]`), such as
    `mask_net/mask_block_0/hidden/kernel`, whatever comes before the block.
    In each MaskBlock (`block_pattern`), with `A` the aggregation width and
    `O` the block's `output_size`:

    ```
    kernel (path ends with)        shape              layout
    mask_aggregation/kernel        (mask_in, A)       (None, model)
    mask_projection/kernel         (A, in)            (model, None)
    hidden/kernel                  (in, O)            (None, model)
    mlp/dense_<i>/kernel           (width_i, size_i)  (model, None)
    ```

    (the last row for the MLP head inside a MaskNet, see `mlp_pattern`).
    The mask's two dense layers are split column-then-row, so the
    aggregation activations stay sharded and one reduction restores the
    full mask; the hidden kernel is split by output column; each MLP kernel
    is split along its input axis, so the last MLP layer's width (often 1)
    needs no care. Biases, LayerNorm and BatchNorm weights, the optional
    low-rank `mask_low_rank_projection` kernel (already small), per-field
    embedding LayerNorms and any layer outside MaskNet are replicated: add
    your own keys to the returned map for them (an embedding table, say),
    each variable path matching at most one key.

    A sharded axis must be divisible by the size of `model_axis` in the
    mesh, or JAX raises an `IndivisibleError` when the variable is created:
    every aggregation width, every block's `output_size`, the MLP's input
    width (the blocks' output width) and every MLP layer size but the last.

    Args:
        device_mesh: The mesh whose `model_axis` the kernels are split
            along; its other axis (usually `"batch"`) shards the data.
        model_axis: Name of the mesh axis to split the kernels along. Must
            be one of `device_mesh.axis_names`.
        block_pattern: Regex that a MaskBlock's own path component must
            fully match.
        mlp_pattern: Regex of the MLP head's path component; `None` leaves
            the MLP replicated.

    Returns:
        A `keras.distribution.LayoutMap` on `device_mesh`, to pass to
            `keras.distribution.ModelParallel(layout_map=...)`.

    Raises:
        ValueError: if `model_axis` is not an axis of `device_mesh`.

    Example:

    ```python
    import keras
    import keras_masknet

    # Building the map needs no device: the mesh may name any.
    mesh = keras.distribution.DeviceMesh(
        shape=(1, 1), axis_names=("batch", "model"), devices=["cpu:0"]
    )
    layout_map = keras_masknet.distribution.mask_net_layout_map(mesh)
    path = "mask_net/mask_block_0/mask_aggregation/kernel"
    assert layout_map[path].axes == (None, "model")
    assert layout_map["mask_net/mlp/dense_1/kernel"].axes == ("model", None)
    assert layout_map["mask_net/mask_block_0/hidden/bias"] is None

    if keras.backend.backend() == "jax":  # ModelParallel runs on JAX
        # On 8 accelerators, shape=(2, 4) gives 2 data-parallel replicas
        # of a model split 4 ways; one device here, so that it runs anywhere.
        devices = keras.distribution.list_devices()[:1]
        mesh = keras.distribution.DeviceMesh(
            shape=(1, 1), axis_names=("batch", "model"), devices=devices
        )
        distribution = keras.distribution.ModelParallel(
            layout_map=keras_masknet.distribution.mask_net_layout_map(mesh),
            batch_dim_name="batch",
        )
        with distribution.scope():
            net = keras_masknet.MaskNet(
                mask_blocks=[{"output_size": 8, "aggregation_size": 16}],
                mlp={"layer_sizes": [8, 1]},
            )
            net.build((None, 12))
    ```
    """
    axis_names = tuple(device_mesh.axis_names)
    if model_axis not in axis_names:
        raise ValueError(
            f"`model_axis` must be one of the device mesh's axis names "
            f"{list(axis_names)}. Received: model_axis={model_axis!r}"
        )
    # `(?:.*/)?` lets anything come before the block (a model, a wrapping
    # layer); the block and sublayer names must be whole path components.
    block = rf"(?:.*/)?{block_pattern}"
    layout_map = keras.distribution.LayoutMap(device_mesh)
    layout_map[rf"{block}/mask_aggregation/kernel"] = (None, model_axis)
    layout_map[rf"{block}/mask_projection/kernel"] = (model_axis, None)
    layout_map[rf"{block}/hidden/kernel"] = (None, model_axis)
    if mlp_pattern is not None:
        mlp = rf"(?:.*/)?{mlp_pattern}"
        layout_map[rf"{mlp}/dense_\d+/kernel"] = (model_axis, None)
    return layout_map
