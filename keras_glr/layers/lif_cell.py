"""`LIFCell`: leaky integrate-and-fire spiking units, with noise on the input current."""

import keras
from keras import ops

from keras_glr import activations
from keras_glr.layers.noisy_dense import NoisyDense
from keras_glr.layers.noisy_layer import NoisyLayer

RESETS = ("subtract", "zero")


@keras.saving.register_keras_serializable(package="keras_glr")
class LIFCell(keras.layers.Layer):
    """A recurrent cell of leaky integrate-and-fire units, for `keras.layers.RNN(LIFCell(...))`.

    At step t, with input x_t (batch, features):

        I_t = x_t W + b + r_t                  the input current, r_t the noise of this step's call
        u_t = leak * u_{t-1} + I_t - threshold * s_{t-1}    reset="subtract"
        u_t = leak * u_{t-1} * (1 - s_{t-1}) + I_t          reset="zero"
        s_t = step(u_t - threshold)            the spikes, 0 or 1: the cell's output
        s_t = step(u_t - threshold) * (1 - s_{t-1})    refractory=True: no spike right after one

    The current is a `NoisyDense` called once per step, so every step draws its
    own noise, and the GLR estimate for W is sum_t x_t^T (L * s(r_t)): everything
    after I_t (the membrane, the threshold, the reset) is never differentiated,
    so the spikes are the true step function, with no surrogate. Under the
    "bp-ste" estimator (the fair BP control) the spikes pass the gradient
    straight through instead (`keras_glr.activations.straight_through`).

    A GLR step runs the recurrence unrolled (`keras_glr._src.recurrence`); at
    inference the layer keeps its own form.

    Args:
        units: positive int, number of neurons.
        leak: the membrane's decay per step, in [0, 1].
        threshold: positive float, the firing threshold.
        reset: "subtract" (the threshold is subtracted after a spike) or
            "zero" (the membrane restarts from zero).
        refractory: bool, a neuron that fired at t - 1 cannot fire at t.
        noise: the current's noise, a `keras_glr.noise` distribution;
            `Gaussian(1.0)` if None.
        **kwargs: `keras.layers.Layer` arguments, and the `NoisyDense`
            initializers of the current (`kernel_initializer`, ...).

    State: (u, s), each (batch, units). Output: s_t, (batch, units).
    """

    def __init__(
        self,
        units,
        leak=0.8,
        threshold=1.0,
        reset="subtract",
        refractory=False,
        noise=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, int) or units < 1:
            raise ValueError(
                f"Invalid value received for argument `units`. Expected a positive integer. Received: units={units!r}"
            )
        if isinstance(leak, bool) or not isinstance(leak, (int, float)) or not 0 <= leak <= 1:
            raise ValueError(
                f"Invalid value received for argument `leak`. Expected a number in [0, 1]. Received: leak={leak!r}"
            )
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not threshold > 0:
            raise ValueError(
                "Invalid value received for argument `threshold`. Expected a positive number. Received: "
                f"threshold={threshold!r}"
            )
        if reset not in RESETS:
            raise ValueError(
                f"Invalid value received for argument `reset`. Expected one of {list(RESETS)}. Received: "
                f"reset={reset!r}"
            )
        if not isinstance(refractory, bool):
            raise ValueError(
                "Invalid value received for argument `refractory`. Expected True or False. Received: "
                f"refractory={refractory!r}"
            )
        self.units, self.leak, self.threshold, self.reset = units, float(leak), float(threshold), reset
        self.refractory = refractory
        self.state_size = [units, units]
        self.output_size = units
        self.current = NoisyDense(
            units, noise=noise, kernel_initializer=kernel_initializer, bias_initializer=bias_initializer, name="current"
        )

    def build(self, input_shape):
        self.current.build(input_shape)
        self.built = True

    def call(self, inputs, states, training=False):
        membrane, spikes = states
        current = self.current(inputs, training=training)
        if self.reset == "subtract":
            membrane = self.leak * membrane + current - self.threshold * spikes
        else:
            membrane = self.leak * membrane * (1.0 - spikes) + current
        fired = NoisyLayer.activate(activations.step, membrane - self.threshold)
        if self.refractory:
            fired = fired * (1.0 - spikes)
        return fired, [membrane, fired]

    def get_initial_state(self, batch_size=None):
        return [ops.zeros((batch_size, self.units)), ops.zeros((batch_size, self.units))]

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "leak": self.leak,
            "threshold": self.threshold,
            "reset": self.reset,
            "refractory": self.refractory,
            "noise": keras.saving.serialize_keras_object(self.current.noise),
            "kernel_initializer": keras.initializers.serialize(self.current.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.current.bias_initializer),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["noise"] = keras.saving.deserialize_keras_object(config["noise"])
        return cls(**config)
