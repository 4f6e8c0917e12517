"""`convert`: an existing Keras model as a GLR model with the same weights.

    bp_model = keras.models.load_model("trained_by_backprop.keras")
    glr_model = keras_glr.convert(bp_model, noise=Gaussian(0.05), activation={"relu": "step"})
    glr_model.compile("adam", loss, copies=100)     # fine-tune by GLR

Every layer with trainable weights becomes noisy, its own activation moved
after the noise (v = f(x) + r, y = act(v)): `Dense` becomes `NoisyDense`,
`Conv2D` becomes `NoisyConv2D`, `SimpleRNN`, `LSTM` and `GRU` become
`keras.layers.RNN` over the noisy cells (noise on every step's gates; their
`activation` is the cell's own, never moved), and every other layer is
wrapped in `keras_glr.layers.Noisy`. Layers without weights (pooling,
reshaping, `Add`, `Lambda`) and the ops nodes of a functional graph
(`x + y`, `keras.ops.*`) are reused as they are, never re-created from their
config; frozen layers with weights are copied. Nested Sequential and
functional models are converted layer by layer.

`convert` checks itself: it runs the original and the converted model with
the noise off on a probe batch and raises an error naming the first layer
whose output differs, so a conversion is never silently another function.
"""

import keras
import numpy as np

from keras_glr import activations
from keras_glr._src import keras_private
from keras_glr._src import recording
from keras_glr._src.model import GLRModel
from keras_glr._src.model import GLRSequential
from keras_glr.layers import Noisy
from keras_glr.layers import NoisyConv2D
from keras_glr.layers import NoisyDense
from keras_glr.layers import NoisyGRUCell
from keras_glr.layers import NoisyLayer
from keras_glr.layers import NoisyLSTMCell
from keras_glr.layers import NoisySimpleRNNCell
from keras_glr.layers import noisy_layers
from keras_glr.noise import Gaussian

_NATIVE = {keras.layers.Dense: NoisyDense, keras.layers.Conv2D: NoisyConv2D}


def convert(model, noise=None, activation=None, seed=None, verify=True, relative_noise=0.1, calibration=None):
    """Returns `model` as a `GLRSequential` or `GLRModel` with the same weights.

    With the noise off (`predict`, `evaluate`) its outputs are the
    original's; in a GLR step every converted layer adds its noise.

    Args:
        model: a built `keras.Sequential` or functional `keras.Model`
            (subclassed models have no graph to convert).
        noise: the noise of every converted layer, a `keras_glr.noise`
            distribution. None (the default) sets each layer's own scale
            from its signal: Gaussian noise with a standard deviation of
            `relative_noise` times that of the layer's noiseless
            pre-activation on `calibration`. One fixed scale for every
            layer swamps the signal of a deep network, whose layers'
            outputs differ in scale by orders of magnitude.
        relative_noise: with `noise=None`, each layer's noise scale as a
            fraction of its pre-activation's standard deviation.
        calibration: with `noise=None`, a batch of inputs (as the model
            takes them) to measure the scales on; None uses the probe batch
            (2 examples drawn from the input specs). Real examples give
            scales closer to what training sees.
        activation: None keeps every activation; a dict maps activations
            by name to new ones, e.g. {"relu": "step"} to binarise a ReLU
            network. It applies to the converted layers' activations and to
            `Activation` and `ReLU` layers.
        seed: the GLR model's noise seed (`GLRModel(seed=...)`).
        verify: run both models with the noise off on a probe batch (2
            examples drawn from the input specs) and raise if an output
            differs; with an `activation` mapping the check runs on the
            conversion without it. False skips it.

    Raises:
        ValueError: for a subclassed or unbuilt model, a model that is
            noisy already, a layer that cannot be converted (named), or a
            conversion whose outputs differ from the original's (naming the
            first layer that differs).
    """
    _check_model(model)
    mapping = _activation_mapping(activation)
    if verify:
        plain, pairs = _convert(model, noise, {}, seed)
        _verify(model, plain, pairs)
    if not verify or mapping:
        plain = _convert(model, noise, mapping, seed)[0]
    if noise is None:
        calibrate_noise(plain, _fed(plain, _probe(model)) if calibration is None else calibration, relative_noise)
    return plain


def calibrate_noise(model, x, fraction=0.1):
    """Sets each noisy layer's noise to Gaussian(fraction * sd), sd the standard deviation of its noiseless
    pre-activation on the batch `x` (over the batch and the layer's units; the largest over a layer's calls).

    A layer whose pre-activation is constant on `x` keeps its noise.
    Returns {layer name: the standard deviation set}.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not fraction > 0:
        raise ValueError(
            "Invalid value received for argument `relative_noise`: expected a positive fraction such as 0.1. "
            f"Received: relative_noise={fraction!r}"
        )
    if isinstance(getattr(model, "input", None), list) and not isinstance(x, (list, tuple, dict)):
        x = [x]  # the structure the model was built with: Keras warns about any other
    with recording.recording(copies=1, noise=False, observe=True) as record:
        model(x, training=False)
    spread = {}
    for entry in record.entries:
        sd = float(np.std(np.asarray(entry.pre_activation, "float64")))
        spread[id(entry.layer)] = max(spread.get(id(entry.layer), 0.0), sd)
    scales = {}
    for layer in noisy_layers(model):
        if spread.get(id(layer), 0.0) > 0.0:
            layer.noise = Gaussian(fraction * spread[id(layer)])
            scales[layer.name] = layer.noise.stddev
    return scales


def _convert(model, noise, mapping, seed):
    """(the converted model, [(original layer, its replacement)] in graph order)."""
    pairs = []

    def clone(layer):
        new = _converted(layer, noise, mapping)
        pairs.append((layer, new))
        return new

    cloned = keras.models.clone_model(model, clone_function=clone, recursive=True)
    if isinstance(model, keras.Sequential):
        converted = GLRSequential(
            [keras.Input(model.inputs[0].shape[1:], dtype=model.inputs[0].dtype), *cloned.layers],
            name=model.name,
            seed=seed,
        )
    else:
        converted = GLRModel(cloned.input, cloned.output, name=model.name, seed=seed)  # the original's structures
    for old, new in pairs:
        if new is not old:
            (new.layer if isinstance(new, Noisy) else new).set_weights(old.get_weights())
    return converted, pairs


def _probe(model, seed=0):
    """Two examples per input, drawn from its spec: normal floats, small non-negative integers."""
    rng = np.random.default_rng(seed)
    batch = []
    for tensor in model.inputs:
        shape = (2,) + tuple(4 if d is None else d for d in tensor.shape[1:])
        dtype = str(tensor.dtype)
        batch.append(
            rng.integers(0, 2, shape).astype(dtype) if "int" in dtype else rng.normal(size=shape).astype(dtype)
        )
    return batch


def _fed(model, batch):
    """`batch` (a list, one array per input) in the structure `model` was built with."""
    if isinstance(model, keras.Sequential):
        return batch[0]
    return batch if isinstance(model.input, (list, tuple)) else batch[0]


def _differs(a, b):
    a, b = np.asarray(a, "float64"), np.asarray(b, "float64")
    scale = np.max(np.abs(a)) if a.size else 0.0
    return a.shape != b.shape or not np.allclose(a, b, rtol=1e-4, atol=1e-5 * (1.0 + scale))


def _layer_outputs(original, converted, pairs, x):
    """Yields (original layer, its replacement, their outputs on `x`), noise off, for the layers that can be reached."""
    if isinstance(original, keras.Sequential):  # one chain: run the two side by side
        old_h = new_h = x[0]
        for old, new in zip(original.layers, converted.layers):
            old_h, new_h = old(old_h, training=False), new(new_h, training=False)
            yield old, new, old_h, new_h
        return
    for old, new in pairs:
        try:
            before = keras.Model(original.input, old.output)(_fed(original, x), training=False)
            after = keras.Model(converted.input, new.output)(_fed(converted, x), training=False)
        except (AttributeError, ValueError, TypeError):
            continue  # a layer inside a nested model, or called more than once
        yield old, new, before, after


def _verify(original, converted, pairs):
    """Raises ValueError naming the first layer whose output differs between the two models, noise off."""
    import keras.tree

    x = _probe(original)
    expected, found = original(_fed(original, x), training=False), converted(_fed(converted, x), training=False)
    if not any(_differs(a, b) for a, b in zip(keras.tree.flatten(expected), keras.tree.flatten(found))):
        return
    for old, new, before, after in _layer_outputs(original, converted, pairs, x):  # in graph order
        if any(_differs(a, b) for a, b in zip(keras.tree.flatten(before), keras.tree.flatten(after))):
            raise ValueError(
                f"convert would change what model '{original.name}' computes: layer '{old.name}' "
                f"({type(old).__name__}) gives other outputs once converted (as {type(new).__name__}). Make that layer "
                "noisy yourself (keras_glr.layers.Noisy(layer) keeps its function), or freeze it "
                "(`layer.trainable = False`) before converting."
            )
    raise ValueError(
        f"convert would change what model '{original.name}' computes: the converted model's outputs differ from the "
        "original's with the noise off. Make its layers noisy yourself (keras_glr.layers.Noisy), or pass verify=False "
        "to accept the difference."
    )


def _check_model(model):
    if not isinstance(model, keras.Model):
        raise ValueError(f"convert takes a Keras model; received {type(model).__name__}.")
    functional = isinstance(model, keras.Sequential) or keras_private.is_graph(model)
    if not functional:
        raise ValueError(
            f"Model '{model.name}' ({type(model).__name__}) is subclassed: its layers are called by Python code that "
            "convert cannot see. Rebuild it as a Sequential or functional model, or make its layers noisy yourself "
            "(keras_glr.layers.Noisy wraps any layer)."
        )
    if not model.built or not getattr(model, "inputs", None):
        raise ValueError(
            f"Model '{model.name}' is not built: give it an Input, or call it on data once, before converting."
        )
    noisy = [l.name for l in keras_private.sublayers(model) if isinstance(l, NoisyLayer)]
    if noisy:
        raise ValueError(
            f"Model '{model.name}' already has noisy layers ({', '.join(noisy)}); it is a GLR model as it is."
        )


def _activation_mapping(activation):
    if activation is None:
        return {}
    if not isinstance(activation, dict):
        raise ValueError(
            "Invalid value received for argument `activation`. Expected None or a dict from activation names to new "
            f"activations, e.g. {{'relu': 'step'}}. Received: activation={activation!r}"
        )
    return {str(name): activations.get(new) for name, new in activation.items()}


def _converted(layer, noise, mapping):
    """The layer that replaces `layer` in the converted model (weights not yet set)."""
    if not isinstance(layer, keras.layers.Layer):
        return layer  # an ops node of a functional graph (x + y, keras.ops.mean): nothing to make noisy
    if isinstance(layer, (keras.layers.Activation, keras.layers.ReLU)):
        return _mapped_activation_layer(layer, mapping)
    if not layer.weights:
        return layer  # weightless (pooling, reshaping, Lambda, a custom layer): reused as it is, never re-created
    config = layer.get_config()
    if not layer.trainable or not layer.trainable_weights:
        return layer.__class__.from_config(config)
    if type(layer) in _RECURRENT:
        return _recurrent(layer, config, noise, mapping)
    own = config.get("activation")
    act = mapping.get(_name(own), own) if own is not None else None
    native = _NATIVE.get(type(layer))
    try:
        if native is not None:
            return native(**{**config, "activation": act, "noise": noise})
        if "activation" in config:
            config["activation"] = "linear"
        return Noisy(layer.__class__.from_config(config), activation=act, noise=noise, name=layer.name)
    except (TypeError, ValueError) as error:
        reason = " ".join(str(error).split()).rstrip(".")
        raise ValueError(
            f"Layer '{layer.name}' ({type(layer).__name__}) cannot be converted: {reason}. Make it noisy yourself with "
            "keras_glr.layers.Noisy(layer), or freeze it (`layer.trainable = False`) before converting."
        ) from None


_RECURRENT = {
    keras.layers.SimpleRNN: NoisySimpleRNNCell,
    keras.layers.LSTM: NoisyLSTMCell,
    keras.layers.GRU: NoisyGRUCell,
}
#: What the noisy cells fix: an LSTM or GRU with other settings would compute another function.
_GATES = {"activation": "tanh", "recurrent_activation": "sigmoid"}


def _recurrent(layer, config, noise, mapping):
    """`SimpleRNN`, `LSTM` or `GRU` as `keras.layers.RNN` over the noisy cell with the same weights and options."""
    cell_class = _RECURRENT[type(layer)]
    cell = {
        "units": config["units"],
        "noise": noise,
        "use_bias": config.get("use_bias", True),
        "name": f"{layer.name}_cell",
    }
    if cell_class is NoisySimpleRNNCell:
        own = config.get("activation")
        cell["activation"] = mapping.get(_name(own), own)
    else:
        odd = {k: _name(config.get(k)) for k, v in _GATES.items() if _name(config.get(k)) != v}
        if type(layer) is keras.layers.GRU and not config.get("reset_after", True):
            odd["reset_after"] = False
        if odd:
            raise ValueError(
                f"Layer '{layer.name}' ({type(layer).__name__}) cannot be converted: its noisy cell computes the "
                f"standard gates (tanh, sigmoid{', reset_after=True' if type(layer) is keras.layers.GRU else ''}), "
                f"and this layer has {odd}. Wrap it in keras_glr.layers.Noisy(layer) (noise at its output), or freeze "
                "it."
            )
    options = {
        k: config[k] for k in ("return_sequences", "return_state", "go_backwards", "stateful", "unroll") if k in config
    }
    return keras.layers.RNN(cell_class(**cell), name=layer.name, **options)


def _mapped_activation_layer(layer, mapping):
    config = layer.get_config()
    if isinstance(layer, keras.layers.ReLU):
        plain = config.get("max_value") is None and not config.get("negative_slope") and not config.get("threshold")
        if "relu" not in mapping or not plain:
            return layer.__class__.from_config(config)
        return keras.layers.Activation(mapping["relu"], name=layer.name)
    name = _name(config["activation"])
    return (
        keras.layers.Activation(mapping[name], name=layer.name)
        if name in mapping
        else layer.__class__.from_config(config)
    )


def _name(serialized):
    """An activation's name from its config entry ("relu", or a serialized object)."""
    if isinstance(serialized, str):
        return serialized
    if isinstance(serialized, dict):
        return serialized.get("config", {}).get("name") or serialized.get("class_name", "")
    return getattr(serialized, "__name__", str(serialized))
