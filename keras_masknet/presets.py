"""Named MaskNet configurations: the paper's two models and the reference's.

Each preset is a `MaskNet` built in one call; `preset_config` returns its
keyword arguments to inspect or edit. Side by side:

| | `ser_mask_net` | `para_mask_net` | `reference_production_mask_net` |
| --- | --- | --- | --- |
| blocks | 3 in series | 3 parallel | 4 parallel |
| block width | 400 (*) | 400 (*) | 1024 |
| aggregation | r = 2 (a) | r = 2 (a) | 1024 |
| embedding LN | per field | per field | - |
| block | (b) | (b) | (c) |
| MLP | - | 3 x 400 | 2048 |

- `ser_mask_net`, `para_mask_net`: the paper's SerMaskNet and ParaMaskNet,
  on field embeddings; every mask is computed from the raw embeddings.
- `reference_production_mask_net`: the backbone of the reference's
  `local_prod.yaml`, on its ~2,776-wide dense feature vector (about 42.5M
  parameters); its MLP layer has a ReLU (`final_layer_activation`).
- (a) aggregation width twice the width of the masked layer.
- (b) `ReLU(LN(W (mask * x)))`, no bias: the paper's block.
- (c) `LN(W (mask * x) + b)`: the reference's block.
- "per field": each field embedding normalized on its own (LN-EMB).

(*) The paper gives no block output width; 400 is the width of its MLP
layers. Its experiments use embeddings of size 10, Adam, batch 1024 and
learning rate 1e-4, and feed the output to a sigmoid unit trained with log
loss (the unit is not part of a preset: add it, as the examples below do).

Presets build layers; the layers know nothing of presets.
"""

# This module imports Keras only when a preset is built, so that the
# benchmarks' driver can read the configurations (the reference's
# production one is defined here only) without starting a backend.
from __future__ import annotations

import copy
from typing import TYPE_CHECKING
from typing import Any

if TYPE_CHECKING:
    from keras_masknet.layers.mask_net import MaskNet

#: The block of the paper's MaskNets: width 400 (see the module docstring),
#: aggregation width r = 2 of the masked layer, no hidden bias, ReLU.
_PAPER_BLOCK = {
    "output_size": 400,
    "reduction_factor": 2.0,
    "reduction_factor_base": "inputs",
    "use_hidden_bias": False,
    "output_activation": "relu",
}

_PRESETS: dict[str, dict[str, Any]] = {
    "ser_mask_net": {
        "mask_blocks": [_PAPER_BLOCK] * 3,
        "mlp": None,
        "use_parallel": False,
        "embedding_layer_norm": True,
    },
    "para_mask_net": {
        "mask_blocks": [_PAPER_BLOCK] * 3,
        "mlp": {"layer_sizes": [400, 400, 400], "final_layer_activation": True},
        "use_parallel": True,
        "embedding_layer_norm": True,
    },
    "reference_production": {
        "mask_blocks": [
            {
                "output_size": 1024,
                "aggregation_size": 1024,
                "input_layer_norm": False,
            }
        ]
        * 4,
        "mlp": {"layer_sizes": [2048], "final_layer_activation": True},
        "use_parallel": True,
    },
}

#: The names `preset_config` takes.
PRESET_NAMES = tuple(_PRESETS)


def preset_config(name: str) -> dict[str, Any]:
    """The `MaskNet` keyword arguments of a preset, as a fresh copy.

    Args:
        name: One of `PRESET_NAMES`: `"ser_mask_net"`, `"para_mask_net"`
            or `"reference_production"`.

    Returns:
        A dict that `MaskNet(**config)` takes; editing it changes nothing
        else.

    Example:

    ```python
    import keras_masknet

    config = keras_masknet.presets.preset_config("para_mask_net")
    for block in config["mask_blocks"]:
        block["dropout_rate"] = 0.1  # FuxiCTR's block dropout
    net = keras_masknet.MaskNet(**config)
    assert net.mask_block_layers[0].dropout_rate == 0.1
    ```
    """
    if not isinstance(name, str) or name not in _PRESETS:
        raise ValueError(
            f"`name` must be one of {list(PRESET_NAMES)}. "
            f"Received: name={name!r}"
        )
    return copy.deepcopy(_PRESETS[name])


def _build(name: str, overrides: dict[str, Any]) -> MaskNet:
    from keras_masknet.layers.mask_net import MaskNet

    return MaskNet(**{**preset_config(name), **overrides})


def ser_mask_net(**kwargs: Any) -> MaskNet:
    """The paper's SerMaskNet: 3 MaskBlocks in series on field embeddings.

    `MaskNet(**preset_config("ser_mask_net"))`: each field embedding is
    normalized on its own (LN-EMB); block 0 masks the normalized embeddings
    and blocks 1 and 2 the previous block's output, every mask computed from
    the raw embeddings with an aggregation width twice the masked layer's
    (r = 2); each block is `ReLU(LN(W (mask * x)))` with 400 units and no
    bias. The output, `(batch, 400)`, feeds the prediction unit.

    Args:
        **kwargs: `MaskNet` arguments that replace the preset's (`name`,
            `dtype`, `mlp`, `mask_blocks`, ...).

    Returns:
        An unbuilt `MaskNet`. Call it on field embeddings
        `(batch, num_fields, dim)`, a list of `(batch, dim_i)`, or a 2-D
        tensor (one field).

    Example:

    ```python
    import numpy as np
    import keras
    import keras_masknet

    inputs = keras.Input(shape=(39, 10))  # Criteo: 39 fields, size 10
    backbone = keras_masknet.presets.ser_mask_net()
    outputs = keras.layers.Dense(1, "sigmoid")(backbone(inputs))
    model = keras.Model(inputs, outputs)
    assert model.predict(np.ones((2, 39, 10)), verbose=0).shape == (2, 1)
    ```

    References:
        - [Wang et al., 2021, MaskNet](https://arxiv.org/abs/2102.07619),
          section 3 and the experimental settings.
    """
    return _build("ser_mask_net", kwargs)


def para_mask_net(**kwargs: Any) -> MaskNet:
    """The paper's ParaMaskNet: 3 parallel MaskBlocks, then an MLP 3 x 400.

    `MaskNet(**preset_config("para_mask_net"))`: each field embedding is
    normalized on its own (LN-EMB); every block masks the normalized
    embeddings with a mask computed from the raw ones (aggregation width
    r = 2 of the masked layer) and is `ReLU(LN(W (mask * x)))` with 400 units
    and no bias; the three outputs are concatenated (1200 wide) and fed to
    an MLP of three ReLU layers of 400. The output, `(batch, 400)`, feeds
    the prediction unit.

    Args:
        **kwargs: `MaskNet` arguments that replace the preset's.

    Returns:
        An unbuilt `MaskNet`.

    Example:

    ```python
    import numpy as np
    import keras_masknet

    backbone = keras_masknet.presets.para_mask_net()
    fields = [np.ones((2, 10), "float32")] * 5 + [np.ones((2, 4), "float32")]
    assert tuple(backbone(fields).shape) == (2, 400)
    ```

    References:
        - [Wang et al., 2021, MaskNet](https://arxiv.org/abs/2102.07619),
          section 3 and the experimental settings.
    """
    return _build("para_mask_net", kwargs)


def reference_production_mask_net(**kwargs: Any) -> MaskNet:
    """The reference's production backbone (Twitter's `local_prod.yaml`).

    `MaskNet(**preset_config("reference_production"))`: 4 parallel
    MaskBlocks, each with aggregation and output width 1024 and no input
    LayerNorm, then an MLP of one ReLU layer of 2048. On the reference's
    ~2,776-wide dense feature vector it has about 42.5M parameters, and its
    weights load from the reference's checkpoints with
    `load_reference_weights` (prefix `"_backbone."`).

    Args:
        **kwargs: `MaskNet` arguments that replace the preset's.

    Returns:
        An unbuilt `MaskNet`.

    Example:

    ```python
    import keras_masknet

    backbone = keras_masknet.presets.reference_production_mask_net()
    backbone.build((None, 2776))
    assert 42.0e6 < backbone.count_params() < 43.0e6
    ```

    References:
        - Twitter's the-algorithm-ml, `projects/home/recap/` (the
          `local_prod.yaml` MaskNet config).
    """
    return _build("reference_production", kwargs)
