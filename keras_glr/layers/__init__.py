"""Keras layers with neuronal noise, trainable by the GLR estimator."""

from keras_glr.layers.lif_cell import LIFCell
from keras_glr.layers.noisy import Noisy
from keras_glr.layers.noisy_cells import NoisyGRUCell
from keras_glr.layers.noisy_cells import NoisyLSTMCell
from keras_glr.layers.noisy_cells import NoisySimpleRNNCell
from keras_glr.layers.noisy_conv2d import NoisyConv2D
from keras_glr.layers.noisy_dense import NoisyDense
from keras_glr.layers.noisy_layer import NoisyLayer
from keras_glr.layers.noisy_layer import noisy_layers
from keras_glr.layers.position_encoding import SinePositionEncoding
from keras_glr.layers.spike_encoders import DirectEncoder
from keras_glr.layers.spike_encoders import RateEncoder

__all__ = [
    "DirectEncoder",
    "LIFCell",
    "Noisy",
    "NoisyConv2D",
    "NoisyDense",
    "NoisyGRUCell",
    "NoisyLSTMCell",
    "NoisyLayer",
    "NoisySimpleRNNCell",
    "RateEncoder",
    "SinePositionEncoding",
    "noisy_layers",
]
