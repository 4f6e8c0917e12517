"""`SinePositionEncoding`: fixed sine and cosine positions added to a sequence, (batch, T, D) -> (batch, T, D)."""

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="keras_glr")
class SinePositionEncoding(keras.layers.Layer):
    """y[b, t, :] = x[b, t, :] + p[t, :], with the fixed positions of Vaswani et al. (2017):

        p[t, 2i] = sin(t / wavelength^(2i / D)),  p[t, 2i + 1] = cos(t / wavelength^(2i / D)).

    It has no weights, so a GLR network needs no noise for it (a learned
    position embedding would be one more noisy layer).

    Args:
        wavelength: the longest wavelength's base, 10000 as in the paper.

    Input shape: (batch, T, D). Output shape: the same.
    """

    def __init__(self, wavelength=10000.0, **kwargs):
        super().__init__(**kwargs)
        self.wavelength = float(wavelength)
        self.supports_masking = True

    def positions(self, steps, width):
        """p, shape (steps, width), as a numpy array."""
        t = np.arange(steps)[:, None]
        rates = self.wavelength ** (-(np.arange(width) // 2 * 2) / width)
        angles = t * rates[None, :]
        return np.where(np.arange(width) % 2 == 0, np.sin(angles), np.cos(angles)).astype("float32")

    def call(self, inputs):
        steps, width = inputs.shape[1], inputs.shape[2]
        return inputs + ops.cast(self.positions(steps, width), inputs.dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "wavelength": self.wavelength}
