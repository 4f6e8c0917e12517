"""`NoisyConv2D`: a 2D convolution with noise on every pre-activation."""

import keras
from keras import ops

from keras_glr.layers.noisy_layer import NoisyLayer


@keras.saving.register_keras_serializable(package="keras_glr")
class NoisyConv2D(NoisyLayer, keras.layers.Conv2D):
    """Conv2D layer y = phi(conv(x, W) + b + r), r independent per output unit.

    Every output position and channel gets its own noise. The GLR estimate
    for W is the layer's own vector-Jacobian product of v with respect to W
    at cotangent L * s(r): a correlation of the input with L * s(r).

    Args:
        filters: positive int, number of output channels.
        kernel_size: int or pair of ints.
        activation: as in `NoisyDense`.
        noise: a `keras_glr.noise` distribution; `Gaussian(1.0)` if None.
        noisy_inference: bool, keep the noise on outside training.
        seed: int or None, seed of the layer's own generator, which draws
            the `noisy_inference` noise. Training noise and the model's noisy
            prediction come from the model's streams (`keras_glr.streams`).
        **kwargs: the other `keras.layers.Conv2D` arguments (`strides`,
            `padding`, `data_format`, initializers, ...).

    Input shape: (batch, height, width, channels) for "channels_last".
    Output shape: (batch, new_height, new_width, filters).
    """

    def __init__(self, filters, kernel_size, activation=None, noise=None, noisy_inference=False, seed=None, **kwargs):
        super().__init__(filters, kernel_size, activation=None, **kwargs)
        self._init_noise(activation, noise, noisy_inference, seed)

    def pre_activation(self, inputs):
        v = self.convolution_op(inputs, self.kernel)
        if self.use_bias:
            if self.data_format == "channels_last":
                bias_shape = (1,) * (self.rank + 1) + (self.filters,)
            else:
                bias_shape = (1, self.filters) + (1,) * self.rank
            v = ops.add(v, ops.reshape(self.bias, bias_shape))
        return v

    def get_config(self):
        return {**super().get_config(), **self._noise_config()}
