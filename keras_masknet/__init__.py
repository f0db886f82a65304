"""keras-masknet: MaskNet (Wang et al., 2021) as Keras 3 layers.

Runs unchanged on TensorFlow, JAX and PyTorch. Numerics are identical to the
MaskNet of Twitter's open-sourced home-timeline ranker by default.
"""

from keras_masknet.callbacks import NonFiniteCheck
from keras_masknet.callbacks import NonFiniteError
from keras_masknet.callbacks import ReseedEachEpoch
from keras_masknet.callbacks import assert_finite
from keras_masknet.callbacks import non_finite_variables
from keras_masknet.distribution import mask_net_layout_map
from keras_masknet.integrity import IntegrityError
from keras_masknet.integrity import load_with_checksum
from keras_masknet.integrity import save_with_checksum
from keras_masknet.integrity import verify_checksum
from keras_masknet.integrity import write_checksum
from keras_masknet.layers.mask_block import MaskBlock
from keras_masknet.layers.mask_net import MaskNet
from keras_masknet.layers.mlp import MLP
from keras_masknet.presets import PRESET_NAMES
from keras_masknet.presets import para_mask_net
from keras_masknet.presets import preset_config
from keras_masknet.presets import reference_production_mask_net
from keras_masknet.presets import ser_mask_net
from keras_masknet.reference import export_reference_weights
from keras_masknet.reference import load_reference_weights
from keras_masknet.version import __version__

__all__ = [
    "IntegrityError",
    "MLP",
    "MaskBlock",
    "MaskNet",
    "NonFiniteCheck",
    "NonFiniteError",
    "PRESET_NAMES",
    "ReseedEachEpoch",
    "__version__",
    "assert_finite",
    "export_reference_weights",
    "load_reference_weights",
    "load_with_checksum",
    "mask_net_layout_map",
    "non_finite_variables",
    "para_mask_net",
    "preset_config",
    "reference_production_mask_net",
    "save_with_checksum",
    "ser_mask_net",
    "verify_checksum",
    "write_checksum",
]
