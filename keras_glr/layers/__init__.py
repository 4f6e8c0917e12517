"""Keras layers with neuronal noise, trainable by the GLR estimator."""

from keras_glr.layers.noisy_conv2d import NoisyConv2D
from keras_glr.layers.noisy_dense import NoisyDense
from keras_glr.layers.noisy_layer import NoisyLayer

__all__ = ["NoisyConv2D", "NoisyDense", "NoisyLayer"]
