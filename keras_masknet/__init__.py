"""keras-masknet: MaskNet (Wang et al., 2021) as Keras 3 layers.

Runs unchanged on TensorFlow, JAX and PyTorch. Numerics are identical to the
MaskNet of Twitter's open-sourced home-timeline ranker by default.

The layers are `MaskBlock`, `MaskNet` and `MLP` (canonical home:
`keras_masknet.layers`). The submodules are MaskNet-specific: `presets`
(the paper's and the reference's configurations), `reference` (the
reference's configs and PyTorch weights in and out), `distribution`
(layout maps for `keras.distribution`) and `datasets` (the generated click
data of the examples and docs).
"""

from keras_masknet import datasets
from keras_masknet import distribution
from keras_masknet import layers
from keras_masknet import presets
from keras_masknet import reference
from keras_masknet.layers import MLP
from keras_masknet.layers import MaskBlock
from keras_masknet.layers import MaskNet
from keras_masknet.version import __version__

__all__ = [
    "MLP",
    "MaskBlock",
    "MaskNet",
    "__version__",
    "datasets",
    "distribution",
    "layers",
    "presets",
    "reference",
]
