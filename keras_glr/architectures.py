"""Ready-made GLR networks: the paper's MLP, a small CNN, a small residual CNN, recurrent, spiking and transformer.

Each is also a `glr-train --arch` choice: its record (the run options it
reads, the settings it trains with, its run names) is in
`keras_glr._src.registry`.
"""

import keras

from keras_glr import activations
from keras_glr._src.model import GLRModel
from keras_glr._src.model import GLRSequential
from keras_glr._src.registry import CELLS
from keras_glr._src.registry import CNN_POOLS
from keras_glr._src.registry import ENCODINGS
from keras_glr.layers import DirectEncoder
from keras_glr.layers import LIFCell
from keras_glr.layers import Noisy
from keras_glr.layers import NoisyConv2D
from keras_glr.layers import NoisyDense
from keras_glr.layers import NoisyGRUCell
from keras_glr.layers import NoisyLSTMCell
from keras_glr.layers import NoisySimpleRNNCell
from keras_glr.layers import RateEncoder
from keras_glr.layers import SinePositionEncoding

__all__ = ["CELLS", "CNN_POOLS", "ENCODINGS", "mlp", "resnet", "rnn", "small_cnn", "snn", "transformer"]


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


def small_cnn(input_shape, num_classes, filters=(8, 16), activation="step", noise=None, pool="output", name="glr_cnn"):
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
        layers.append(
            NoisyConv2D(
                f,
                3,
                activation=activation,
                padding="same",
                noise=noise,
                pool_size=2 if inside else None,
                name=f"conv_{i + 1}",
            )
        )
        if not inside:
            layers.append(keras.layers.MaxPooling2D())
    layers += [keras.layers.Flatten(), NoisyDense(num_classes, noise=noise, name="logits")]
    return GLRSequential(layers, name=name)


def resnet(input_shape, num_classes, filters=(8, 16), activation="relu", noise=None, name="glr_resnet"):
    """A small residual CNN with batch normalization; every conv and normalization layer is noisy.

    stem:     conv(3x3, filters[0]) with its pre-activation max-pooled 2x2
              before the noise (`NoisyConv2D(pool_size=2)`) -> BN, phi
    block s:  for each later width f = filters[s], a residual block that
              halves the resolution, as a strided ResNet block does:
              y = BN(conv(phi(BN(pooled conv(h))))), h = phi(shortcut + y),
              where the first conv (3x3) and the shortcut (1x1) max-pool
              their pre-activations 2x2 before the noise
    head:     flatten -> dense logits

    Each conv (bias-free: the BN after it centres) and each
    `BatchNormalization` (momentum 0.9: a small dataset has few steps) is
    its own noisy layer (`keras_glr.layers.Noisy`, or `NoisyConv2D` where it
    pools), estimated from its own noise; the normalization uses and then
    follows its moving statistics as `Noisy` describes. With layer-wise
    injection each layer's copies begin at that layer: where the residual
    addition joins a tensor that has passed fewer noisy layers to one that
    has passed more, the first is padded with its clean row
    (`keras_glr._src.fan_out`). Blocks that halve the resolution keep
    the noise values per example few (784 per layer at 28x28 with the
    default widths); guides/your-network.md has what a block at the stem's
    resolution cost GLR.

    Args:
        input_shape: (height, width, channels), e.g. (28, 28, 1).
        num_classes: width C of the logits.
        filters: the width of the stem, then of each residual block, e.g.
            (8, 16); at least two entries.
        activation: phi (see `keras_glr.activations`).
        noise: the noise of every noisy layer; `Gaussian(1.0)` if None.
    """
    if len(input_shape) != 3:
        raise ValueError(
            "The resnet needs image inputs of shape (height, width, channels); received "
            f"input_shape={tuple(input_shape)}. "
            "Do not flatten the data."
        )
    filters = tuple(filters)
    if len(filters) < 2:
        raise ValueError(
            f"The resnet needs the stem's width and at least one residual block's in `filters`, e.g. (8, 16); "
            f"received filters={filters}."
        )
    if min(input_shape[:2]) < 2 ** len(filters):
        raise ValueError(
            f"The resnet halves the resolution {len(filters)} times (the stem and each block), so it needs images of "
            "at "
            f"least {2 ** len(filters)} x {2 ** len(filters)}; received input_shape={tuple(input_shape)}. Use fewer "
            "`filters` entries or a larger --image-size."
        )

    def pooled_conv(width, size):
        return NoisyConv2D(width, size, padding="same", use_bias=False, noise=noise, pool_size=2)

    def norm(act=None):
        return Noisy(keras.layers.BatchNormalization(momentum=0.9), activation=act, noise=noise)

    inputs = keras.Input(tuple(input_shape))
    h = norm(activation)(
        NoisyConv2D(filters[0], 3, padding="same", use_bias=False, noise=noise, pool_size=2, name="stem")(inputs)
    )
    for f in filters[1:]:
        y = norm(activation)(pooled_conv(f, 3)(h))
        y = norm()(Noisy(keras.layers.Conv2D(f, 3, padding="same", use_bias=False), noise=noise)(y))
        h = keras.layers.Activation(activations.get(activation))(keras.layers.Add()([pooled_conv(f, 1)(h), y]))
    return GLRModel(inputs, NoisyDense(num_classes, noise=noise, name="logits")(keras.layers.Flatten()(h)), name=name)


def rnn(input_shape, num_classes, hidden=(64,), cell="simple", activation="tanh", noise=None, name="glr_rnn"):
    """An image read row by row: rows are time steps -> stacked noisy recurrences -> dense logits of the last state.

    Every step of every cell draws its own noise (`keras_glr.layers.NoisySimpleRNNCell`,
    `NoisyLSTMCell`, `NoisyGRUCell`), and so do the logits.

    Args:
        input_shape: (height, width, channels), read as `height` steps of
            width * channels features; or (time_steps, features).
        num_classes: width C of the logits.
        hidden: the width of each stacked recurrence, e.g. (64,).
        cell: "simple" (h_t = phi(x_t W + h_{t-1} U + b + r_t)), "lstm" or "gru".
        activation: phi of the simple cell (the LSTM's and GRU's gates fix their own).
        noise: the noise of every noisy layer; `Gaussian(1.0)` if None.
    """
    if cell not in CELLS:
        raise ValueError(f"Invalid `cell`: {cell!r}. Expected one of {', '.join(CELLS)}.")
    if len(input_shape) not in (2, 3):
        raise ValueError(
            f"The rnn reads sequences of shape (time_steps, features) or images (height, width, channels) row by row; "
            f"received input_shape={tuple(input_shape)}. Do not flatten the data."
        )
    inputs = keras.Input(tuple(input_shape))
    h = (
        inputs
        if len(input_shape) == 2
        else keras.layers.Reshape((input_shape[0], input_shape[1] * input_shape[2]))(inputs)
    )
    for i, units in enumerate(hidden):
        if cell == "simple":
            made = NoisySimpleRNNCell(units, activation, noise=noise)
        else:
            made = (NoisyLSTMCell if cell == "lstm" else NoisyGRUCell)(units, noise=noise)
        h = keras.layers.RNN(made, return_sequences=i < len(hidden) - 1, name=f"recurrence_{i + 1}")(h)
    return GLRModel(inputs, NoisyDense(num_classes, noise=noise, name="logits")(h), name=name)


def snn(
    input_shape,
    num_classes,
    hidden=(128,),
    time_steps=8,
    encoding="direct",
    leak=0.8,
    threshold=1.0,
    noise=None,
    seed=None,
    name="glr_snn",
):
    """A spiking network: input encoded over `time_steps` -> LIF layers -> dense logits of the mean spike rate.

        s_0 = encode(x) (T steps)      direct: x at every step; rate: Bernoulli(x) spikes
        s_l = LIF(s_{l-1} W_l + b_l + r)   per step, noise on each step's input current
        logits = mean_t(s_L) V + c + r_out

    Spikes are the step function, never differentiated (`keras_glr.layers.LIFCell`).

    Args:
        input_shape: the shape of one input (an image is flattened).
        num_classes: width C of the logits.
        hidden: the number of neurons of each LIF layer.
        time_steps: T, steps the input is presented for.
        encoding: "direct" or "rate" (`keras_glr.layers.DirectEncoder`, `RateEncoder`).
        leak: the membrane's decay per step, of every LIF unit.
        threshold: the firing threshold of every LIF unit.
        noise: the noise of every noisy layer; `Gaussian(1.0)` if None.
        seed: seed of the rate encoder's draws.
    """
    if encoding not in ENCODINGS:
        raise ValueError(f"Invalid `encoding`: {encoding!r}. Expected one of {', '.join(ENCODINGS)}.")
    inputs = keras.Input(tuple(input_shape))
    h = (DirectEncoder(time_steps) if encoding == "direct" else RateEncoder(time_steps, seed=seed))(inputs)
    for i, units in enumerate(hidden):
        h = keras.layers.RNN(
            LIFCell(units, leak=leak, threshold=threshold, noise=noise), return_sequences=True, name=f"spiking_{i + 1}"
        )(h)
    h = keras.layers.GlobalAveragePooling1D(name="spike_rate")(h)
    return GLRModel(inputs, NoisyDense(num_classes, noise=noise, name="logits")(h), name=name)


def transformer(input_shape, num_classes, hidden=(32,), heads=2, activation="relu", noise=None, name="glr_transformer"):
    """A small pre-norm transformer over an image's rows: rows are tokens -> blocks of attention and MLP -> logits.

        h_0 = rows W_e + b_e + r + positions          (T tokens of width D; sine positions, no weights)
        a = MHA(norm(h), norm(h)) + r,   h = h + a    (noise at the attention's output, `Noisy`)
        f = phi(norm(h) W_1 + b_1 + r) W_2 + b_2 + r,   h = h + f
        logits = mean_t(norm(h)) V + c + r

    One block per entry of `hidden`, each of width D = hidden[0] with an MLP
    of width 2D. The normalizations have no weights (`center=False,
    scale=False`), so every trainable layer is noisy and no gradient
    crosses between noisy layers: the blocks' residual sums and the
    normalizations are merges and weightless layers, as in the resnet.

    Args:
        input_shape: (height, width, channels), read as `height` tokens of
            width * channels features; or (tokens, features).
        num_classes: width C of the logits.
        hidden: one width D per block, all equal (the residual stream).
        heads: attention heads per block; D must divide by it.
        activation: phi of the MLPs.
        noise: the noise of every noisy layer; `Gaussian(1.0)` if None.
    """
    if len(input_shape) not in (2, 3):
        raise ValueError(
            f"The transformer reads sequences of shape (tokens, features) or images (height, width, channels) row by "
            f"row; received input_shape={tuple(input_shape)}. Do not flatten the data."
        )
    width = hidden[0]
    if any(w != width for w in hidden) or width % heads:
        raise ValueError(
            f"The transformer's blocks share one width D that its heads divide; received hidden={tuple(hidden)}, "
            f"heads={heads}. Give equal widths, e.g. hidden=({width}, {width}), and heads dividing {width}."
        )
    inputs = keras.Input(tuple(input_shape))
    h = inputs if len(input_shape) == 2 else keras.layers.Reshape((input_shape[0], -1))(inputs)
    h = SinePositionEncoding()(NoisyDense(width, noise=noise, name="embedding")(h))

    def norm(x):
        return keras.layers.LayerNormalization(center=False, scale=False)(x)

    for i in range(len(hidden)):
        x = norm(h)
        attention = keras.layers.MultiHeadAttention(heads, width // heads)
        h = keras.layers.Add()([h, Noisy(attention, noise=noise, name=f"attention_{i + 1}")(x, x)])
        x = NoisyDense(2 * width, activation, noise=noise, name=f"mlp_{i + 1}")(norm(h))
        h = keras.layers.Add()([h, NoisyDense(width, noise=noise, name=f"mlp_out_{i + 1}")(x)])
    h = keras.layers.GlobalAveragePooling1D()(norm(h))
    return GLRModel(inputs, NoisyDense(num_classes, noise=noise, name="logits")(h), name=name)
