"""The Keras objects a `RunConfig` describes: its noise, loss, optimizer, and the compiled model.

    model = build.build_model(config, splits.info, steps_per_epoch)

The network comes from its record in `registry` (which builder of
`keras_glr.architectures`, with which of the run's options); `init_from`
starts it from another run's weights; the copy split becomes `compile`'s
`copies_per_layer`.
"""

import dataclasses
import math

import keras

from keras_glr import architectures
from keras_glr import noise
from keras_glr._src import checkpoints
from keras_glr._src import fan_out
from keras_glr._src import registry
from keras_glr.layers import noisy_layers


def make_noise(config):
    """The configured noise: `Gaussian(sigma)`, or `Laplace` of scale sigma / sqrt(2) (the same standard deviation)."""
    if config.noise == "gaussian":
        return noise.Gaussian(config.sigma)
    return noise.Laplace(config.sigma / math.sqrt(2.0))


def make_loss(config):
    """The configured loss: "zero_one", or sparse softmax cross-entropy of the logits."""
    if config.loss == "zero-one":
        return "zero_one"
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def make_optimizer(config, steps_per_epoch):
    """The configured optimizer, its learning rate following the configured schedule over `epochs * steps_per_epoch`
    steps."""
    rate = config.learning_rate
    total = steps_per_epoch * config.epochs
    if config.schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(rate, decay_steps=total)
    elif config.schedule == "step":
        boundaries = [int(total * 0.5), int(total * 0.75)]
        rate = keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, [rate, rate * 0.1, rate * 0.01])
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(rate)
    if config.optimizer == "momentum":
        return keras.optimizers.SGD(rate, momentum=0.9)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(rate)
    return keras.optimizers.RMSprop(rate)


def build_model(config, info, steps_per_epoch):
    """The compiled model that `config` describes, for data described by `info`."""
    record = registry.get(config.arch)
    builder = getattr(architectures, record.builder)
    model = builder(info.input_shape, info.num_classes, noise=make_noise(config), **record.arguments(config))
    if config.init_from:
        initialise_from(model, config.init_from)
    chosen = config.estimator_options(copies_per_layer(config, model))
    model.compile(
        make_optimizer(config, steps_per_epoch), make_loss(config), metrics=["accuracy"], **dataclasses.asdict(chosen)
    )
    return model


def initialise_from(model, source):
    """Sets `model`'s weights (trainable and not: BN statistics too) to those of the run or .keras file `source`.

    The networks must match weight for weight; the activations may differ.
    Raises ValueError naming the first mismatch.
    """
    path = checkpoints.model_file(source)
    weights = keras.saving.load_model(path, compile=False).get_weights()
    shapes = [tuple(w.shape) for w in weights]
    expected = [tuple(w.shape) for w in model.get_weights()]
    if shapes != expected:
        first = next((i for i, (a, b) in enumerate(zip(shapes, expected)) if a != b), min(len(shapes), len(expected)))
        raise ValueError(
            f"Invalid `init_from`: {source} holds a network of {len(shapes)} weight arrays, this configuration builds "
            f"{len(expected)}; they differ first at array {first} ({shapes[first] if first < len(shapes) else 'none'} "
            f"against {expected[first] if first < len(expected) else 'none'}). Use the --arch, --hidden, --filters and "
            "--pool of the run you start from."
        )
    model.set_weights(weights)


def copies_per_layer(config, model):
    """`compile`'s `copies_per_layer` for `config.copy_split`: None (even), "proportional", or sizes from the shares.

    Shares become whole copies (pairs, with antithetic noise) by largest
    remainders, at least one each (`fan_out.proportional_sizes`): "1,2,4"
    with K = 232 and pairs gives 34, 66, 132. Raises ValueError when the
    shares are not one per noisy layer.
    """
    if config.copy_split == "even":
        return None
    if config.copy_split == "proportional":
        return "proportional"
    layers = [layer.name for layer in noisy_layers(model)]
    if len(config.copy_split) != len(layers):
        raise ValueError(
            f"Invalid `copy_split`: {','.join(map(str, config.copy_split))} gives {len(config.copy_split)} shares, "
            "but the "
            f"{config.arch} has {len(layers)} noisy layers ({', '.join(layers)}). Give one share per noisy layer, or "
            "--copy-split even."
        )
    return fan_out.proportional_sizes(config.copies, config.copy_split, 2 if config.antithetic else 1)
