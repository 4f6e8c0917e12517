"""Spike encoders: static inputs as sequences for spiking networks, (batch, ...) -> (batch, T, features)."""

import keras
from keras import ops


def _check_time_steps(time_steps):
    if isinstance(time_steps, bool) or not isinstance(time_steps, int) or time_steps < 1:
        raise ValueError(
            "Invalid value received for argument `time_steps`. Expected a positive integer. Received: "
            f"time_steps={time_steps!r}"
        )


@keras.saving.register_keras_serializable(package="keras_glr")
class DirectEncoder(keras.layers.Layer):
    """Direct (current) coding: the flattened input at every one of `time_steps` steps.

    Input: (batch, ...). Output: (batch, time_steps, features), every step
    equal to the input flattened.
    """

    def __init__(self, time_steps, **kwargs):
        super().__init__(**kwargs)
        _check_time_steps(time_steps)
        self.time_steps = time_steps

    def call(self, inputs):
        flat = ops.reshape(inputs, (ops.shape(inputs)[0], -1))
        return ops.repeat(ops.expand_dims(flat, 1), self.time_steps, axis=1)

    def compute_output_shape(self, input_shape):
        features = 1
        for d in input_shape[1:]:
            features = None if d is None or features is None else features * d
        return (input_shape[0], self.time_steps, features)

    def get_config(self):
        return {**super().get_config(), "time_steps": self.time_steps}


@keras.saving.register_keras_serializable(package="keras_glr")
class RateEncoder(DirectEncoder):
    """Bernoulli rate coding: s_t ~ Bernoulli(clip(gain * x, 0, 1)), independently per step and feature.

    The draws come from the layer's own `keras.random.SeedGenerator(seed)`,
    in training and at inference alike (a prediction is one draw; the same
    seed gives the same sequence of draws). Under a GLR step every copy of
    an example has its own draw; the encoding has no weights, so the
    estimate keeps its objective, the loss averaged over the encoding too.

    Args:
        time_steps: positive int, T.
        gain: the firing probability per unit of input (inputs in [0, 1]
            fire with their own value as probability when gain is 1).
        seed: int or None.

    Input: (batch, ...). Output: (batch, time_steps, features) of 0s and 1s.
    """

    def __init__(self, time_steps, gain=1.0, seed=None, **kwargs):
        super().__init__(time_steps, **kwargs)
        if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not gain > 0:
            raise ValueError(
                f"Invalid value received for argument `gain`. Expected a positive number. Received: gain={gain!r}"
            )
        self.gain, self.seed = float(gain), seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs):
        rates = ops.clip(self.gain * super().call(inputs), 0.0, 1.0)
        return ops.cast(keras.random.uniform(ops.shape(rates), seed=self.seed_generator) < rates, rates.dtype)

    def get_config(self):
        return {**super().get_config(), "gain": self.gain, "seed": self.seed}
