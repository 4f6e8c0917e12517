"""Ready-made GLR networks: the paper's MLP and a small CNN."""

import keras

from keras_glr.layers import NoisyConv2D
from keras_glr.layers import NoisyDense
from keras_glr.model import GLRSequential
from keras_glr.run_config import CNN_POOLS


def mlp(input_shape, num_classes, hidden=(20,), activation="step", noise=None, name="glr_mlp"):
    """The paper's network: input -> hidden noisy dense layers -> logits.

    Args:
        input_shape: shape of one input, e.g. (196,); images are flattened.
        num_classes: width C of the output (logits).
        hidden: widths of the hidden layers, e.g. (20,) for 196-20-10.
        activation: hidden activation (see `keras_glr.activations`).
        noise: the noise distribution of every layer (the output layer is
            noisy too: GLR estimates its weights from its own noise).
    """
    layers = [keras.Input(tuple(input_shape))]
    if len(input_shape) > 1:
        layers.append(keras.layers.Flatten())
    layers += [NoisyDense(w, activation, noise=noise, name=f"hidden_{i + 1}") for i, w in enumerate(hidden)]
    layers.append(NoisyDense(num_classes, noise=noise, name="logits"))
    return GLRSequential(layers, name=name)


def small_cnn(input_shape, num_classes, filters=(8, 16), activation="step", noise=None, pool="output",
              name="glr_cnn"):
    """conv(3x3) -> 2x2 max-pool per entry of `filters`, then dense logits.

    pool: "pre-activation" pools inside each `NoisyConv2D`, before its noise
        (v = maxpool(conv(x)) + r, y = phi(v)); "output" pools the layer's
        output in a `MaxPooling2D` (v = conv(x) + r, y = maxpool(phi(v))),
        with four times the noise values.
    """
    if pool not in CNN_POOLS:
        raise ValueError(f"Invalid `pool`: {pool!r}. Expected one of {', '.join(CNN_POOLS)}.")
    if len(input_shape) == 1:
        raise ValueError(
            f"The CNN needs image inputs of shape (height, width, channels); "
            f"received input_shape={tuple(input_shape)}. Do not flatten the data."
        )
    layers = [keras.Input(tuple(input_shape))]
    for i, f in enumerate(filters):
        inside = pool == "pre-activation"
        layers.append(NoisyConv2D(f, 3, activation=activation, padding="same", noise=noise, pool_size=2 if inside else None,
                                  name=f"conv_{i + 1}"))
        if not inside:
            layers.append(keras.layers.MaxPooling2D())
    layers += [keras.layers.Flatten(), NoisyDense(num_classes, noise=noise, name="logits")]
    return GLRSequential(layers, name=name)
