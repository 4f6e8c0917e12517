"""`Noisy`: any Keras layer made a noisy layer, v = f(x; theta) + r, y = phi(v)."""

import inspect
import re
import typing

import keras
import tensorflow as tf

from keras_glr._src import keras_private
from keras_glr._src import recording
from keras_glr.layers.noisy_layer import NoisyLayer


@keras.saving.register_keras_serializable(package="keras_glr")
class Noisy(NoisyLayer, keras.layers.Layer):
    """Wraps a Keras layer f(x; theta): y = phi(f(x; theta) + r).

    The GLR estimate for f's weights is f's own vector-Jacobian product at
    cotangent L * s(r), with x cut off from the gradient, as for
    `NoisyDense` (docs/guides/estimator.md, "What is local"): it works for any f whose output rows
    belong to its input rows (Dense, Conv1D/2D/3D, DepthwiseConv2D,
    SeparableConv2D, Conv2DTranspose, Embedding, the normalization layers).

    Any call: a layer called with several tensors or tensor keywords
    (`MultiHeadAttention(query, value, key=None, attention_mask=None)`, a
    layer of yours taking two inputs or a list) is wrapped the same way,
    `Noisy(layer)(query, value, attention_mask=mask)`: every tensor argument
    is cut off from the gradient, and the noise is added to the layer's one
    output. A layer that returns several tensors (`return_attention_scores=True`)
    is refused: call it so that it returns one. A layer whose `build` needs
    the shapes of several arguments is built by its first call, as Keras
    builds it unwrapped.

    A composite block (a layer or sub-model holding several layers, a
    residual block say) is one noisy layer with noise at its output only: it
    is trained *block-locally*, by backprop inside the block and GLR between
    blocks. No gradient crosses from one noisy block into another; inside
    the block the layers need derivatives, as for backprop. A block must not
    hold noisy layers of its own.

    The wrapped layer always runs in inference mode: Dropout inside it is
    off, and a BatchNormalization normalises with its moving statistics, so
    the copies of an example never see each other (every copy's loss
    depends on its own noise only, which the estimator and its leave-one-out
    baseline need). Batch normalization under copies: when `Noisy` wraps a
    `keras.layers.BatchNormalization` directly, each training call (GLR or
    a BP twin) first normalises every row with the moving statistics as they
    were before the call, then moves them toward the mean and variance of
    the K copies of every example that reached the layer in that call (under
    fan-out the shared clean row of the copies that have not yet diverged
    counts for each of them; under a distribution strategy, the rows of
    every replica count), with the layer's own `momentum`. `copies_per_chunk` is refused with such
    a layer: the statistics would move between chunks. So inference equals a
    plain Keras model with the same weights and statistics, and the estimate
    is unbiased for the network with the statistics of the step held fixed.
    A BatchNormalization inside a composite block is refused: wrap it on its
    own.

    Args:
        layer: the Keras layer (or model) f. Its own activation must be
            linear: give the activation to `Noisy` instead, so the noise
            is added before it.
        activation: phi, as in `NoisyDense`; None is linear.
        noise: a `keras_glr.noise` distribution; `Gaussian(1.0)` if None.
        noisy_inference: bool, keep the noise on outside training.
        seed: int or None, seed of the `noisy_inference` noise.
        **kwargs: `keras.layers.Layer` arguments (`name`, ...); the name
            defaults to "noisy_" and the wrapped layer's class in snake
            case, numbered as Keras numbers its own names
            (`Noisy(Dense(4))` is "noisy_dense", like a `NoisyDense`).

    Input shape: that of `layer`. Output shape: that of `layer`.
    """

    def __init__(self, layer, activation=None, noise=None, noisy_inference=False, seed=None, **kwargs):
        if kwargs.get("name") is None:
            kwargs["name"] = _unique_name("noisy_" + _snake_case(type(layer).__name__))
        super().__init__(**kwargs)
        self.layer = _checked(layer)
        self.supports_masking = self.layer.supports_masking  # noise is added position by position
        self._init_noise(activation, noise, noisy_inference, seed)

    def build(self, input_shape):
        if self.layer.built or _builds_from_several_shapes(self.layer):
            pass  # built by its first call, which sees every argument (Keras's own `__call__`)
        elif _builds_by_calling(self.layer):  # its sublayers are built by its first call
            self.layer(self._symbolic(input_shape))
        else:
            self.layer.build(input_shape)
        self.built = True

    def _symbolic(self, input_shape):
        """KerasTensors of `input_shape` (one shape, or a list or dict of shapes)."""
        return keras.tree.map_shape_structure(
            lambda shape: keras.KerasTensor(tuple(shape), dtype=self.layer.compute_dtype), input_shape
        )

    def _output_spec(self, input_shape):
        """The wrapped layer called symbolically (which builds what its call uses): its output's KerasTensor."""
        return self.layer.compute_output_spec(self._symbolic(input_shape))

    def pre_activation(self, inputs):
        """f(inputs; theta), inference mode; `inputs` is one input, or a `CallArguments` for several."""
        if isinstance(inputs, CallArguments):
            outputs = self.layer(inputs.inputs, *inputs.args, training=False, **inputs.kwargs)
        else:
            outputs = self.layer(inputs, training=False)
        if isinstance(outputs, (list, tuple, dict)):
            raise ValueError(
                f"Noisy adds its noise to one output tensor, and layer '{self.layer.name}' "
                f"({type(self.layer).__name__}) returned {len(outputs)}. Call it so that it returns one (for "
                "MultiHeadAttention: return_attention_scores=False), or wrap a layer that keeps one of them."
            )
        return outputs

    def __call__(self, inputs, *args, **kwargs):
        # Keras refuses a catch-all **kwargs that mixes tensors with other values (attention_mask=m,
        # use_causal_mask=True): the wrapped layer's keywords travel as two dicts, its tensors and its options.
        if _KEYWORDS not in kwargs:
            own = {k: kwargs.pop(k) for k in ("training", "mask") if k in kwargs}
            tensors = {k: v for k, v in kwargs.items() if v is None or _is_tensor(v)}
            options = {k: v for k, v in kwargs.items() if k not in tensors}
            kwargs = {**own, **({_KEYWORDS: tensors, _OPTIONS: options} if kwargs else {})}
        return super().__call__(inputs, *args, **kwargs)

    def call(self, inputs, *args, training=False, mask=None, layer_tensors=None, layer_options=None):
        # `mask` is accepted for graphs that pass one (BatchNormalization's call takes it); the noise covers every row.
        if args or layer_tensors or layer_options:
            inputs = CallArguments(inputs, args, {**(layer_tensors or {}), **(layer_options or {})})
        outputs = super().call(inputs, training=training)
        if training and isinstance(self.layer, keras.layers.BatchNormalization) and self.layer.trainable:
            record = recording.current()
            _follow_batch_statistics(self.layer, inputs, None if record is None else record.copies_per_row(self))
        return outputs

    def compute_output_spec(self, inputs, *args, **kwargs):
        if args or kwargs.get(_KEYWORDS) or kwargs.get(_OPTIONS) or _builds_from_several_shapes(self.layer):
            # Several arguments: trace the call, which builds the wrapped layer from all of them.
            return keras.Operation.compute_output_spec(self, inputs, *args, **kwargs)
        return super().compute_output_spec(inputs)

    def compute_output_shape(self, input_shape):
        try:
            return self.layer.compute_output_shape(input_shape)
        except NotImplementedError:  # a custom layer without it: Keras's symbolic call tells the shape
            return tuple(self._output_spec(input_shape).shape)

    def get_config(self):
        return {
            **super().get_config(),
            "layer": keras.saving.serialize_keras_object(self.layer),
            **self._noise_config(),
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        layer = keras.saving.deserialize_keras_object(config.pop("layer"), custom_objects=custom_objects)
        return cls(layer, **config)


_KEYWORDS, _OPTIONS = "layer_tensors", "layer_options"


def _is_tensor(value):
    return isinstance(value, keras.KerasTensor) or keras.ops.is_tensor(value)


class CallArguments(typing.NamedTuple):
    """One call of a wrapped layer with several arguments, f(inputs, *args, **kwargs): a structure `tf.nest` maps."""

    inputs: object
    args: tuple
    kwargs: dict


def _builds_from_several_shapes(layer):
    """True for a layer whose `build` needs the shapes of several call arguments (`MultiHeadAttention`)."""
    if type(layer).build is keras.layers.Layer.build:
        return False
    parameters = inspect.signature(layer.build).parameters.values()
    return (
        sum(p.default is p.empty and p.kind is not p.VAR_KEYWORD and p.kind is not p.VAR_POSITIONAL for p in parameters)
        > 1
    )


def _builds_by_calling(layer):
    """True for a layer without a `build` of its own (a custom block): Keras builds it by a symbolic first call."""
    return type(layer).build is keras.layers.Layer.build


def _snake_case(name):
    """Conv2DTranspose -> conv2d_transpose, as Keras names its layers."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _unique_name(prefix):
    """`prefix`, or `prefix_N` when taken: Keras's own counter, so it never clashes with an automatic name."""
    uid = keras.backend.get_uid(prefix)
    return prefix if uid == 1 else f"{prefix}_{uid - 1}"


def _follow_batch_statistics(layer, inputs, copies_per_row=None):
    """moving <- momentum * moving + (1 - momentum) * batch moment, over every axis but the layer's.

    copies_per_row: None (each row is one copy), or the copies that each of
    an example's R rows stands for, a list of R numbers
    (`ForwardRecord.copies_per_row`): the moments are then a weighted mean,
    those of the K copies of every example. Under a `tf.distribute` strategy
    the moments are those of the rows of every replica together (sums
    all-reduced), so all replicas agree.
    """
    x = tf.cast(tf.stop_gradient(inputs), tf.float32)
    axis = layer.axis % len(x.shape)
    axes = [i for i in range(len(x.shape)) if i != axis]
    if copies_per_row is None:
        count = tf.cast(tf.size(x) // tf.shape(x)[axis], tf.float32)
        total, squares = tf.reduce_sum(x, axes), tf.reduce_sum(tf.square(x), axes)
    else:
        weights = tf.tile(tf.constant(copies_per_row, tf.float32), [tf.shape(x)[0] // len(copies_per_row)])
        weights = tf.reshape(weights, [-1] + [1] * (len(x.shape) - 1))
        positions = tf.cast(
            tf.reduce_prod(tf.shape(x)[1:]) // tf.shape(x)[axis], tf.float32
        )  # a replica may have no row
        count = tf.reduce_sum(weights) * positions
        total, squares = tf.reduce_sum(weights * x, axes), tf.reduce_sum(weights * tf.square(x), axes)
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
        total, squares, count = context.all_reduce("sum", [total, squares, count])
    mean = total / count
    variance = tf.maximum(squares / count - tf.square(mean), 0.0)
    momentum = layer.momentum
    layer.moving_mean.assign(layer.moving_mean * momentum + tf.cast(mean, layer.moving_mean.dtype) * (1.0 - momentum))
    layer.moving_variance.assign(
        layer.moving_variance * momentum + tf.cast(variance, layer.moving_variance.dtype) * (1.0 - momentum)
    )


def _checked(layer):
    """`layer`, or ValueError saying why `Noisy` cannot wrap it."""
    if not isinstance(layer, keras.layers.Layer):
        raise ValueError(f"Noisy wraps a Keras layer or model; received {type(layer).__name__}: {layer!r}.")
    if isinstance(layer, NoisyLayer):
        raise ValueError(
            f"Layer '{layer.name}' ({type(layer).__name__}) is noisy already; use it as it is, without Noisy."
        )
    activation = getattr(layer, "activation", None)
    if activation is not None and keras.activations.serialize(activation) != "linear":
        name = keras.activations.serialize(activation)
        raise ValueError(
            f"Layer '{layer.name}' ({type(layer).__name__}) has its own activation {name!r}, applied inside the "
            "layer, before Noisy adds its noise (v = f(x) + r must come first). Build it with activation=None and "
            f"give the activation to Noisy: Noisy({type(layer).__name__}(..., activation=None), activation={name!r})."
        )
    inner = keras_private.sublayers(layer)
    if any(isinstance(l, NoisyLayer) for l in inner):
        raise ValueError(
            f"Layer '{layer.name}' holds noisy layers; a composite block is one noisy layer with noise at its output. "
            "Use the noisy layers directly (a GLR model may nest them), or wrap a block without them."
        )
    if isinstance(layer, keras.layers.BatchNormalization) and layer.renorm:
        raise ValueError(
            f"Layer '{layer.name}' uses batch renormalization (renorm=True), whose corrections come from the batch and "
            "would couple the copies of an example. Use BatchNormalization(renorm=False)."
        )
    if any(isinstance(l, keras.layers.BatchNormalization) for l in inner):
        raise ValueError(
            f"Layer '{layer.name}' holds a BatchNormalization layer. Inside a composite block its moving statistics "
            "would never be updated (Noisy runs the block in inference mode, so copies stay independent). Wrap the "
            "normalization on its own, Noisy(BatchNormalization()), and the layers around it separately."
        )
    return layer
