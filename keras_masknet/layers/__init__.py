"""Keras layers of keras_masknet."""

from keras_masknet.layers.mask_block import MaskBlock
from keras_masknet.layers.mask_net import MaskNet
from keras_masknet.layers.mlp import MLP

__all__ = ["MLP", "MaskBlock", "MaskNet"]
