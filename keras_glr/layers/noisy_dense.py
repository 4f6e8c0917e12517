"""`NoisyDense`: a dense layer with noise on every pre-activation."""

import keras
from keras import ops

from keras_glr.layers.noisy_layer import NoisyLayer


@keras.saving.register_keras_serializable(package="keras_glr")
class NoisyDense(NoisyLayer, keras.layers.Dense):
    """Dense layer y = phi(x W + b + r), r ~ `noise`, independent per unit.

    Noise is added inside a GLR training step (see `keras_glr._src.recording`).
    At inference the layer is the deterministic y = phi(x W + b), unless
    `noisy_inference=True`, which keeps one noise draw per call. The GLR
    estimate for W is x^T (L * s(r)) (the paper's Eq. 4/5; docs/guides/estimator.md, "The formula").

    Args:
        units: positive int, output width.
        activation: activation phi; a callable, a Keras name, or one of
            `keras_glr.activations.NAMES` ("step", "abs", "sign", ...).
        noise: a `keras_glr.noise` distribution; `Gaussian(1.0)` if None.
        noisy_inference: bool, keep the noise on outside training.
        seed: int or None, seed of the layer's own generator, which draws
            the `noisy_inference` noise. Training noise and the model's noisy
            prediction come from the model's streams (`keras_glr._src.streams`).
        **kwargs: the other `keras.layers.Dense` arguments (`use_bias`,
            initializers, regularizers, constraints, `name`, ...).

    Input shape: (batch, ..., input_dim). Output shape: (batch, ..., units).
    """

    def __init__(self, units, activation=None, noise=None, noisy_inference=False, seed=None, **kwargs):
        super().__init__(units, activation=None, **kwargs)
        self._init_noise(activation, noise, noisy_inference, seed)

    def pre_activation(self, inputs):
        v = ops.matmul(inputs, self.kernel)
        if self.use_bias:
            v = ops.add(v, self.bias)
        return v

    def get_config(self):
        return {**super().get_config(), **self._noise_config()}
