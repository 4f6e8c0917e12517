"""Recurrent cells with noise on every step's pre-activation: `NoisySimpleRNNCell`, `NoisyLSTMCell`, `NoisyGRUCell`.

Each is a noisy layer whose pre-activation reads the step's input and the
carried state, v_t = g((x_t, h_{t-1}); theta) + r_t; a cell run for T steps
is T calls, each with its own noise stream, and its GLR estimate is the sum
over steps of each step's VJP at L * s(r_t), x_t and h_{t-1} cut off from
the gradient. Use them as `keras.layers.RNN(cell)`: a GLR step runs the
loop unrolled (`keras_glr._src.recurrence`).
"""

import keras
from keras import ops

from keras_glr.layers.noisy_layer import NoisyLayer


class _NoisyCell(NoisyLayer, keras.layers.Layer):
    """kernel (in, G u), recurrent_kernel (u, G u), bias (G u): the weights of Keras's cell with G gates."""

    gates = 1

    def __init__(
        self,
        units,
        activation,
        noise,
        noisy_inference,
        seed,
        kernel_initializer,
        recurrent_initializer,
        bias_initializer,
        use_bias,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, int) or units < 1:
            raise ValueError(
                f"Invalid value received for argument `units`. Expected a positive integer. Received: units={units!r}"
            )
        self.units = units
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self._init_noise(activation, noise, noisy_inference, seed)

    def build(self, input_shape):
        width = self.gates * self.units
        self.kernel = self.add_weight((input_shape[-1], width), self.kernel_initializer, name="kernel")
        self.recurrent_kernel = self.add_weight(
            (self.units, width), self.recurrent_initializer, name="recurrent_kernel"
        )
        self.bias = (
            self.add_weight(self._bias_shape(width), self._bias_initializer(), name="bias") if self.use_bias else None
        )
        self.built = True

    def _bias_shape(self, width):
        return (width,)

    def _bias_initializer(self):
        return self.bias_initializer

    def pre_activation(self, inputs):
        """v = x_t W + h_{t-1} U + b for inputs (x_t, h_{t-1}), shape (batch, gates * units)."""
        x, h = inputs
        v = ops.matmul(x, self.kernel) + ops.matmul(h, self.recurrent_kernel)
        return v if self.bias is None else v + self.bias

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            **self._noise_config(),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["noise"] = keras.saving.deserialize_keras_object(config["noise"])
        return cls(**config)


class _GatedCell(_NoisyCell):
    """A cell whose gates fix their own activations (sigmoid and tanh): no `activation` argument."""

    def __init__(
        self,
        units,
        noise,
        noisy_inference,
        seed,
        kernel_initializer,
        recurrent_initializer,
        bias_initializer,
        use_bias,
        **kwargs,
    ):
        kwargs.pop("activation", None)
        super().__init__(
            units,
            "linear",
            noise,
            noisy_inference,
            seed,
            kernel_initializer,
            recurrent_initializer,
            bias_initializer,
            use_bias,
            **kwargs,
        )

    def get_config(self):
        config = super().get_config()
        config.pop("activation")
        return config


@keras.saving.register_keras_serializable(package="keras_glr")
class NoisySimpleRNNCell(_NoisyCell):
    """h_t = phi(x_t W + h_{t-1} U + b + r_t), r_t drawn afresh at every step.

    The weights are those of `keras.layers.SimpleRNNCell` (kernel,
    recurrent_kernel, bias), so a BP-trained cell's weights load unchanged.
    The GLR estimate for W is sum_t x_t^T (L * s(r_t)), for U
    sum_t h_{t-1}^T (L * s(r_t)).

    Args:
        units: positive int, the state's width.
        activation: phi, as in `NoisyDense` ("tanh" by default; "step" for
            binary units).
        noise: a `keras_glr.noise` distribution; `Gaussian(1.0)` if None.
        noisy_inference: bool, keep the noise on outside training.
        seed: int or None, seed of the `noisy_inference` noise.
        kernel_initializer: as in `keras.layers.SimpleRNNCell`.
        recurrent_initializer: as in `keras.layers.SimpleRNNCell`.
        bias_initializer: as in `keras.layers.SimpleRNNCell`.
        use_bias: as in `keras.layers.SimpleRNNCell`.

    State: h, (batch, units). Output: h_t, (batch, units).
    """

    def __init__(
        self,
        units,
        activation="tanh",
        noise=None,
        noisy_inference=False,
        seed=None,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        use_bias=True,
        **kwargs,
    ):
        super().__init__(
            units,
            activation,
            noise,
            noisy_inference,
            seed,
            kernel_initializer,
            recurrent_initializer,
            bias_initializer,
            use_bias,
            **kwargs,
        )
        self.state_size = units
        self.output_size = units

    def call(self, inputs, states, training=False):
        h = self.activate(self.activation, self.noisy_pre_activation((inputs, states[0])))
        return h, [h]


@keras.saving.register_keras_serializable(package="keras_glr")
class NoisyLSTMCell(_GatedCell):
    """An LSTM cell with noise on each gate's pre-activation.

        [v_i, v_f, v_c, v_o] = x_t W + h_{t-1} U + b + r_t      (4 * units noise values per step)
        c_t = sigmoid(v_f) c_{t-1} + sigmoid(v_i) tanh(v_c)
        h_t = sigmoid(v_o) tanh(c_t)

    The weights and gate order are those of `keras.layers.LSTMCell` (the
    forget gate's bias starts at 1, `unit_forget_bias`). The cell's only
    weights sit in v, so its GLR estimate is v's VJP at L * s(r_t), summed
    over steps: the gates and the carried c_{t-1} are never differentiated.

    Args:
        units: positive int, the width of h and c.
        noise: as in `NoisySimpleRNNCell`.
        noisy_inference: as in `NoisySimpleRNNCell`.
        seed: as in `NoisySimpleRNNCell`.
        kernel_initializer: as in `keras.layers.LSTMCell`.
        recurrent_initializer: as in `keras.layers.LSTMCell`.
        bias_initializer: as in `keras.layers.LSTMCell`.
        use_bias: as in `keras.layers.LSTMCell`.
        unit_forget_bias: as in `keras.layers.LSTMCell` (the forget gate's bias starts at 1).

    State: (h, c), each (batch, units). Output: h_t, (batch, units).
    """

    gates = 4

    def __init__(
        self,
        units,
        noise=None,
        noisy_inference=False,
        seed=None,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        use_bias=True,
        unit_forget_bias=True,
        **kwargs,
    ):
        super().__init__(
            units,
            noise,
            noisy_inference,
            seed,
            kernel_initializer,
            recurrent_initializer,
            bias_initializer,
            use_bias,
            **kwargs,
        )
        self.unit_forget_bias = unit_forget_bias
        self.state_size = [units, units]
        self.output_size = units

    def _bias_initializer(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        units, base = self.units, self.bias_initializer

        def initializer(shape, dtype=None):
            return ops.concatenate([base((units,), dtype), ops.ones((units,), dtype), base((2 * units,), dtype)])

        return initializer

    def call(self, inputs, states, training=False):
        h, c = states
        v_i, v_f, v_c, v_o = ops.split(self.noisy_pre_activation((inputs, h)), 4, axis=-1)
        c = ops.sigmoid(v_f) * c + ops.sigmoid(v_i) * ops.tanh(v_c)
        h = ops.sigmoid(v_o) * ops.tanh(c)
        return h, [h, c]

    def get_config(self):
        return {**super().get_config(), "unit_forget_bias": self.unit_forget_bias}


@keras.saving.register_keras_serializable(package="keras_glr")
class NoisyGRUCell(_GatedCell):
    """A GRU cell (Keras's `reset_after=True` form) with noise on each gate's pre-activation.

    Two noisy calls per step, each with its own noise:

        [v_z, v_r] = x_t W_zr + b_zr + h_{t-1} U_zr + c_zr + r_t     (2 * units)
        z, g = sigmoid(v_z), sigmoid(v_r)
        v_h = x_t W_h + b_h + g * (h_{t-1} U_h + c_h) + r'_t          (units; g enters as an input)
        h_t = z h_{t-1} + (1 - z) tanh(v_h)

    The weights and their layout are those of `keras.layers.GRUCell`
    (kernel (in, 3 units), recurrent_kernel (units, 3 units), bias (2,
    3 units): input and recurrent biases). Under a GLR step the reset gate g
    enters v_h cut off from the gradient, like x_t and h_{t-1}: its own
    weights are estimated from the first call's noise.

    Args:
        units: positive int, the width of h.
        noise: as in `NoisySimpleRNNCell`.
        noisy_inference: as in `NoisySimpleRNNCell`.
        seed: as in `NoisySimpleRNNCell`.
        kernel_initializer: as in `keras.layers.GRUCell`.
        recurrent_initializer: as in `keras.layers.GRUCell`.
        bias_initializer: as in `keras.layers.GRUCell`.
        use_bias: as in `keras.layers.GRUCell`.

    State: h, (batch, units). Output: h_t, (batch, units).
    """

    gates = 3

    def __init__(
        self,
        units,
        noise=None,
        noisy_inference=False,
        seed=None,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        use_bias=True,
        **kwargs,
    ):
        super().__init__(
            units,
            noise,
            noisy_inference,
            seed,
            kernel_initializer,
            recurrent_initializer,
            bias_initializer,
            use_bias,
            **kwargs,
        )
        self.state_size = units
        self.output_size = units

    def _bias_shape(self, width):
        return (2, width)  # input and recurrent biases, as Keras's reset_after GRU

    def pre_activation(self, inputs):
        """(x_t, h_{t-1}) -> [v_z, v_r], shape (batch, 2 units); (x_t, h_{t-1}, g) -> v_h, shape (batch, units)."""
        units = self.units
        if len(inputs) == 2:
            x, h = inputs
            v = ops.matmul(x, self.kernel[:, : 2 * units]) + ops.matmul(h, self.recurrent_kernel[:, : 2 * units])
            return v if self.bias is None else v + self.bias[0, : 2 * units] + self.bias[1, : 2 * units]
        x, h, reset = inputs
        from_input = ops.matmul(x, self.kernel[:, 2 * units :])
        from_state = ops.matmul(h, self.recurrent_kernel[:, 2 * units :])
        if self.bias is not None:
            from_input, from_state = from_input + self.bias[0, 2 * units :], from_state + self.bias[1, 2 * units :]
        return from_input + reset * from_state

    def call(self, inputs, states, training=False):
        h = states[0]
        v_z, v_r = ops.split(self.noisy_pre_activation((inputs, h)), 2, axis=-1)
        z = ops.sigmoid(v_z)
        candidate = ops.tanh(self.noisy_pre_activation((inputs, h, ops.sigmoid(v_r))))
        h = z * h + (1.0 - z) * candidate
        return h, [h]
