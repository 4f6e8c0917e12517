"""`NoisyConv2D`: a 2D convolution with noise on every pre-activation."""

import keras
from keras import ops

from keras_glr.layers.noisy_layer import NoisyLayer


@keras.saving.register_keras_serializable(package="keras_glr")
class NoisyConv2D(NoisyLayer, keras.layers.Conv2D):
    """Conv2D layer y = phi(g(x, W) + r), r independent per output unit.

    g(x, W) = conv(x, W) + b, or maxpool(conv(x, W) + b) with `pool_size`:
    the pre-activation is pooled before the noise is added, so the noise
    (and the score the estimate reads) has pool_size^2 times fewer values.
    For a nondecreasing phi (step, relu, sigmoid) the noiseless layer is the
    usual conv -> phi -> max-pool, since phi and max commute.

    Every output position and channel gets its own noise. The GLR estimate
    for W is the layer's own vector-Jacobian product of g with respect to W
    at cotangent L * s(r): a correlation of the input with L * s(r), routed
    through the pooling's argmax when there is one.

    Args:
        filters: positive int, number of output channels.
        kernel_size: int or pair of ints.
        activation: as in `NoisyDense`.
        noise: a `keras_glr.noise` distribution; `Gaussian(1.0)` if None.
        noisy_inference: bool, keep the noise on outside training.
        seed: int or None, seed of the layer's own generator, which draws
            the `noisy_inference` noise. Training noise and the model's noisy
            prediction come from the model's streams (`keras_glr._src.streams`).
        pool_size: None, or an int or pair of ints: max-pool the
            pre-activation over windows of this size (strides equal to it,
            "valid" padding) before the noise.
        **kwargs: the other `keras.layers.Conv2D` arguments (`strides`,
            `padding`, `data_format`, initializers, ...).

    Input shape: (batch, height, width, channels) for "channels_last".
    Output shape: (batch, new_height, new_width, filters), the new height
    and width divided (rounded down) by `pool_size` when it is given.
    """

    def __init__(
        self,
        filters,
        kernel_size,
        activation=None,
        noise=None,
        noisy_inference=False,
        seed=None,
        pool_size=None,
        **kwargs,
    ):
        super().__init__(filters, kernel_size, activation=None, **kwargs)
        self._init_noise(activation, noise, noisy_inference, seed)
        self.pool_size = _pair(pool_size)

    def pre_activation(self, inputs):
        v = self.convolution_op(inputs, self.kernel)
        if self.use_bias:
            if self.data_format == "channels_last":
                bias_shape = (1,) * (self.rank + 1) + (self.filters,)
            else:
                bias_shape = (1, self.filters) + (1,) * self.rank
            v = ops.add(v, ops.reshape(self.bias, bias_shape))
        if self.pool_size is not None:
            v = ops.max_pool(v, self.pool_size, strides=self.pool_size, padding="valid", data_format=self.data_format)
        return v

    def compute_output_shape(self, input_shape):
        shape = list(super().compute_output_shape(input_shape))
        if self.pool_size is not None:
            spatial = range(1, 3) if self.data_format == "channels_last" else range(2, 4)
            for axis, size in zip(spatial, self.pool_size):
                shape[axis] = None if shape[axis] is None else shape[axis] // size
        return tuple(shape)

    def get_config(self):
        return {**super().get_config(), **self._noise_config(), "pool_size": self.pool_size}


def _pair(pool_size):
    """None, or `pool_size` as a pair of positive ints. Raises ValueError otherwise."""
    if pool_size is None:
        return None
    if isinstance(pool_size, int):
        pair = (pool_size, pool_size)
    else:
        pair = tuple(pool_size) if isinstance(pool_size, (tuple, list)) else ()
    if (
        isinstance(pool_size, bool)
        or len(pair) != 2
        or not all(isinstance(p, int) and not isinstance(p, bool) and p >= 1 for p in pair)
    ):
        raise ValueError(
            "Invalid value received for argument `pool_size`. Expected None, a positive int or a pair of positive "
            f"ints. Received: pool_size={pool_size!r}"
        )
    return pair
