"""`convert`: an existing Keras model as a GLR model with the same weights.

    bp_model = keras.models.load_model("trained_by_backprop.keras")
    glr_model = keras_glr.convert(bp_model, noise=Gaussian(0.05), activation={"relu": "step"})
    glr_model.compile("adam", loss, copies=100)     # fine-tune by GLR

Every layer with trainable weights becomes noisy, its own activation moved
after the noise (v = f(x) + r, y = act(v)): `Dense` becomes `NoisyDense`,
`Conv2D` becomes `NoisyConv2D`, and every other layer is wrapped in
`keras_glr.layers.Noisy`. Layers without trainable weights (pooling,
reshaping, `Add`, frozen layers) stay as they are. Nested Sequential and
functional models are converted layer by layer.
"""

import keras

from keras_glr import activations
from keras_glr.layers import Noisy
from keras_glr.layers import NoisyConv2D
from keras_glr.layers import NoisyDense
from keras_glr.layers import NoisyLayer
from keras_glr.model import GLRModel
from keras_glr.model import GLRSequential

_NATIVE = {keras.layers.Dense: NoisyDense, keras.layers.Conv2D: NoisyConv2D}


def convert(model, noise=None, activation=None, seed=None):
    """Returns `model` as a `GLRSequential` or `GLRModel` with the same weights.

    With the noise off (`predict`, `evaluate`) its outputs are the
    original's; in a GLR step every converted layer adds its noise.

    Args:
        model: a built `keras.Sequential` or functional `keras.Model`
            (subclassed models have no graph to convert).
        noise: the noise of every converted layer, a `keras_glr.noise`
            distribution; `Gaussian(1.0)` if None. A trained network
            usually wants a smaller scale (the CNN trains at 0.05).
        activation: None keeps every activation; a dict maps activations
            by name to new ones, e.g. {"relu": "step"} to binarise a ReLU
            network. It applies to the converted layers' activations and to
            `Activation` and `ReLU` layers.
        seed: the GLR model's noise seed (`GLRModel(seed=...)`).

    Raises:
        ValueError: for a subclassed or unbuilt model, a model that is
            noisy already, or a layer that cannot be converted (named).
    """
    _check_model(model)
    mapping = _activation_mapping(activation)
    pairs = []

    def clone(layer):
        new = _converted(layer, noise, mapping)
        pairs.append((layer, new))
        return new

    cloned = keras.models.clone_model(model, clone_function=clone, recursive=True)
    if isinstance(model, keras.Sequential):
        converted = GLRSequential([keras.Input(model.inputs[0].shape[1:], dtype=model.inputs[0].dtype), *cloned.layers],
                                  name=model.name, seed=seed)
    else:
        converted = GLRModel(cloned.inputs, cloned.outputs, name=model.name, seed=seed)
    for old, new in pairs:
        (new.layer if isinstance(new, Noisy) else new).set_weights(old.get_weights())
    return converted


def _check_model(model):
    if not isinstance(model, keras.Model):
        raise ValueError(f"convert takes a Keras model; received {type(model).__name__}.")
    functional = isinstance(model, keras.Sequential) or (hasattr(model, "_nodes_by_depth") and getattr(model, "inputs", None))
    if not functional:
        raise ValueError(
            f"Model '{model.name}' ({type(model).__name__}) is subclassed: its layers are called by Python code that "
            "convert cannot see. Rebuild it as a Sequential or functional model, or make its layers noisy yourself "
            "(keras_glr.layers.Noisy wraps any layer)."
        )
    if not model.built or not getattr(model, "inputs", None):
        raise ValueError(f"Model '{model.name}' is not built: give it an Input, or call it on data once, before converting.")
    noisy = [l.name for l in model._flatten_layers(include_self=False, recursive=True) if isinstance(l, NoisyLayer)]
    if noisy:
        raise ValueError(f"Model '{model.name}' already has noisy layers ({', '.join(noisy)}); it is a GLR model as it is.")


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
    if isinstance(layer, (keras.layers.Activation, keras.layers.ReLU)):
        return _mapped_activation_layer(layer, mapping)
    config = layer.get_config()
    if not layer.trainable or not layer.trainable_weights:
        return layer.__class__.from_config(config)
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
        raise ValueError(
            f"Layer '{layer.name}' ({type(layer).__name__}) cannot be converted: {error}. Make it noisy yourself with "
            "keras_glr.layers.Noisy(layer), or freeze it (`layer.trainable = False`) before converting."
        ) from None


def _mapped_activation_layer(layer, mapping):
    config = layer.get_config()
    if isinstance(layer, keras.layers.ReLU):
        plain = config.get("max_value") is None and not config.get("negative_slope") and not config.get("threshold")
        if "relu" not in mapping or not plain:
            return layer.__class__.from_config(config)
        return keras.layers.Activation(mapping["relu"], name=layer.name)
    name = _name(config["activation"])
    return keras.layers.Activation(mapping[name], name=layer.name) if name in mapping else layer.__class__.from_config(config)


def _name(serialized):
    """An activation's name from its config entry ("relu", or a serialized object)."""
    if isinstance(serialized, str):
        return serialized
    if isinstance(serialized, dict):
        return serialized.get("config", {}).get("name") or serialized.get("class_name", "")
    return getattr(serialized, "__name__", str(serialized))
