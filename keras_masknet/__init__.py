"""keras-masknet: MaskNet (Wang et al., 2021) as Keras 3 layers.

Runs unchanged on TensorFlow, JAX and PyTorch. Numerics are identical to the
MaskNet of Twitter's open-sourced home-timeline ranker by default.
"""

from keras_masknet.layers.mask_block import MaskBlock
from keras_masknet.layers.mask_net import MaskNet
from keras_masknet.layers.mlp import MLP
from keras_masknet.reference import export_reference_weights
from keras_masknet.reference import load_reference_weights
from keras_masknet.version import __version__

__all__ = [
    "MLP",
    "MaskBlock",
    "MaskNet",
    "__version__",
    "export_reference_weights",
    "load_reference_weights",
]
