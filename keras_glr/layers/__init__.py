"""Keras layers with neuronal noise, trainable by the GLR estimator."""

from keras_glr.layers.lif_cell import LIFCell
from keras_glr.layers.noisy import Noisy
from keras_glr.layers.noisy_conv2d import NoisyConv2D
from keras_glr.layers.noisy_dense import NoisyDense
from keras_glr.layers.noisy_layer import NoisyLayer
from keras_glr.layers.noisy_layer import noisy_layers

__all__ = ["LIFCell", "Noisy", "NoisyConv2D", "NoisyDense", "NoisyLayer", "noisy_layers"]
