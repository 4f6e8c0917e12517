"""`NoisyLayer`: what every noisy layer shares.

A noisy layer computes v = g(x; theta) + r and returns phi(v). It differs from
an ordinary Keras layer in one place only: its `call` hands the noiseless
pre-activation g(x; theta) to the active `ForwardRecord`, which adds the
noise and records (v, s(r)) for the GLR estimator.
"""

import keras
import tensorflow as tf
from keras import ops

from keras_glr import activations
from keras_glr import noise as noise_module
from keras_glr._src import keras_private
from keras_glr._src import recording


class NoisyLayer:
    """Mixin for layers with neuronal noise. Subclasses define `pre_activation`.

    Subclasses call `_init_noise` from `__init__` and add `_noise_config()` to
    their `get_config`.
    """

    def _init_noise(self, activation, noise, noisy_inference, seed):
        self.activation = activations.get(activation)
        self.noise = noise_module.get(noise if noise is not None else "gaussian")
        if not isinstance(noisy_inference, bool):
            raise ValueError(
                "Invalid value received for argument `noisy_inference`. "
                f"Expected True or False. Received: noisy_inference={noisy_inference!r}"
            )
        self.noisy_inference = noisy_inference
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def pre_activation(self, inputs):
        """Returns the noiseless pre-activation g(inputs; theta)."""
        raise NotImplementedError

    def call(self, inputs, training=False):
        return self.activate(self.activation, self.noisy_pre_activation(inputs))

    def noisy_pre_activation(self, inputs):
        """v = g(inputs; theta) + r under a record (which draws r and records the call), else g(inputs; theta).

        `inputs` may be a structure (a recurrent cell's (x_t, h_{t-1}), the
        arguments of a `Noisy` layer called with several tensors): under a
        GLR record every tensor in it is cut off from the gradient.
        """
        record = recording.current()
        if record is not None and record.local:
            # GLR: no gradient may cross from this layer into earlier ones.
            inputs = tf.nest.map_structure(
                lambda t: keras_private.stop_gradient_keeping_mask(t) if tf.is_tensor(t) else t, inputs
            )
        if record is not None:
            record.check_call_site(self)
            return record.noisy_pre_activation(self, inputs)
        v = self.pre_activation(inputs)
        if self.noisy_inference:
            v = v + self.noise.sample(ops.shape(v), seed=self.seed_generator)
        return v

    @staticmethod
    def activate(activation, v):
        """activation(v); step and sign units pass gradients straight through under a "bp-ste" record."""
        record = recording.current()
        if record is not None and record.straight_through:
            return activations.straight_through(activation, record.straight_through["slope"])(v)
        return activation(v)

    def _noise_config(self):
        return {
            "activation": activations.serialize(self.activation),
            "noise": keras.saving.serialize_keras_object(self.noise),
            "noisy_inference": self.noisy_inference,
            "seed": self.seed,
        }


def noisy_layers(model):
    """The model's noisy layers, nested models included, in a fixed order: their slots (`keras_glr._src.streams`)."""
    return [l for l in keras_private.sublayers(model) if isinstance(l, NoisyLayer)]
