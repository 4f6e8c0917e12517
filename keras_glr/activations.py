"""Activations for GLR networks, including discontinuous ones.

GLR needs no derivative of the activation, so step and sign units train as
easily as sigmoids. Everything here is registered with Keras, so models that
use these activations save and load. Any Keras activation is accepted too.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_glr", name="step")
def step(x):
    """Threshold unit (paper phi_o): 1 where x > 0, else 0."""
    return ops.cast(ops.greater(x, 0), x.dtype)


@keras.saving.register_keras_serializable(package="keras_glr", name="absolute")
def absolute(x):
    """y = |x|."""
    return ops.abs(x)


@keras.saving.register_keras_serializable(package="keras_glr", name="sign")
def sign(x):
    """y = sign(x) in {-1, 0, 1}."""
    return ops.sign(x)


@keras.saving.register_keras_serializable(package="keras_glr")
class SlopedSigmoid:
    """Sigmoid with slope s (paper phi_s): y = 1 / (1 + exp(-s x)).

    Args:
        slope: float > 0. `slope=1` is the ordinary sigmoid; large slopes
            approach the step function.
    """

    def __init__(self, slope=1.0):
        if isinstance(slope, bool) or not isinstance(slope, (int, float)) or not slope > 0:
            raise ValueError(
                f"Invalid value received for argument `slope`. Expected a float > 0. Received: slope={slope!r}"
            )
        self.slope = float(slope)

    def __call__(self, x):
        return ops.sigmoid(self.slope * x)

    def get_config(self):
        return {"slope": self.slope}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"SlopedSigmoid(slope={self.slope})"


def sigmoid_with_slope(slope):
    """Returns the activation x -> 1 / (1 + exp(-slope * x))."""
    return SlopedSigmoid(slope)


_BY_NAME = {
    "step": step,
    "threshold": step,
    "heaviside": step,
    "abs": absolute,
    "absolute": absolute,
    "sign": sign,
}

#: Names accepted by `get` in addition to Keras' own activation names.
NAMES = tuple(sorted(_BY_NAME))


def get(identifier):
    """Returns an activation callable.

    Accepts None (linear), a callable, one of `NAMES`, any Keras activation
    name ("sigmoid", "relu", ...), or a config produced by `serialize`.
    """
    if identifier is None:
        return keras.activations.linear
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]
    if isinstance(identifier, dict):
        return keras.saving.deserialize_keras_object(identifier)
    if callable(identifier):
        return identifier
    try:
        return keras.activations.get(identifier)
    except ValueError:
        raise ValueError(
            "Invalid value received for argument `activation`. Expected a "
            f"callable, one of {list(NAMES)} or a Keras activation name such "
            f"as 'sigmoid' or 'relu'. Received: activation={identifier!r}"
        ) from None


def serialize(activation):
    """Returns a config for `activation` that `get` turns back into it."""
    return keras.saving.serialize_keras_object(activation)


def straight_through(activation, slope=None):
    """Returns `activation` with a straight-through gradient, if it has none.

    For `step` and `sign` the forward value is unchanged, and the backward
    pass uses a surrogate: the identity (slope None), or a sigmoid of the
    given slope (step: sigmoid(s x); sign: 2 sigmoid(s x) - 1). Other
    activations are returned as they are.

        y = surrogate(x) + stop_gradient(activation(x) - surrogate(x))
    """
    if activation not in (step, sign):
        return activation

    def surrogate(x):
        if slope is None:
            return x
        smooth = ops.sigmoid(slope * x)
        return smooth if activation is step else 2.0 * smooth - 1.0

    def with_straight_through_gradient(x):
        s = surrogate(x)
        return s + ops.stop_gradient(activation(x) - s)

    return with_straight_through_gradient
