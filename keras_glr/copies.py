"""Noise copies: repeat, fan out, read the first copies, split into chunks.

The K copies of example b occupy rows b*K .. b*K + K - 1 of every tensor
after the first noise. Before it, a *fanned-out* pass computes each example
once: the first noisy call broadcasts its pre-activation to the K copies
(`recording.ForwardRecord`). Whether a model may fan out is decided from its
graph (`can_fan_out`); with layer-wise injection every noisy layer fans out
its own group of copies (`can_fan_out_by_layer`). Every estimator runs its
passes through `in_chunks`, so chunking, fan-out and replicas work the same
for all of them.
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from keras_glr import recurrence
from keras_glr.layers import NoisyLayer
from keras_glr.layers import noisy_layers
from keras_glr.recording import recording

_EXAMPLE, _COPY = "example", "copy"


@dataclasses.dataclass
class Pass:
    """One forward pass's share of a step's estimate.

    Attributes:
        gradients: list aligned with the model's trainable variables.
        loss: the sum of the pass's per-copy losses (times sample weights).
        y, y_pred, sample_weight: the first copy of each example, one row
            per example (see `first_copies`).
        copies: K, the copies per example behind `loss` (the model sets it
            on the step's estimate).
    """

    gradients: list
    loss: object
    y: object
    y_pred: object
    sample_weight: object
    copies: int = 1


def repeat(structure, copies):
    """Repeats every row of every tensor `copies` times: row b -> rows b*K .. b*K + K - 1."""
    if copies == 1:
        return structure

    def repeat_rows(t):
        if t is None:
            return None
        t = tf.convert_to_tensor(t)
        if t.shape.rank is None:
            return tf.repeat(t, copies, axis=0)
        tiled = tf.tile(tf.expand_dims(t, 1), [1, copies] + [1] * (t.shape.rank - 1))
        if t.shape[1:].is_fully_defined():
            return tf.reshape(tiled, [-1] + t.shape[1:].as_list())
        return tf.reshape(tiled, tf.concat([[-1], tf.shape(t)[1:]], axis=0))

    return tf.nest.map_structure(repeat_rows, structure)


def first_copies(structure, copies):
    """Rows 0, K, 2K, ...: the first copy of each example, shape (B, ...).

    Training metrics read these: one noisy copy per example has the same
    expectation as all K copies, at 1/K of the cost.
    """
    if copies == 1:
        return structure
    return tf.nest.map_structure(lambda t: None if t is None else t[::copies], structure)


def copy_losses(loss, y, y_pred, sample_weight, copies):
    """Per-copy losses times sample weights, shape (N,), with y and w repeated to the copies.

    Args:
        loss: fn(y_true, y_pred) -> per-example losses, shape (N,).
        y: the labels, one row per example.
        sample_weight: per-example weights, one row per example, or None.
        y_pred: the model's outputs, one row per copy, shape (N, ...).
    """
    from keras_glr import validation

    validation.check_label_shape(y, y_pred)
    try:
        values = loss(repeat(y, copies), y_pred)
    except ValueError:
        loss(y, first_copies(y_pred, copies))  # the same complaint, in the user's shapes
        raise
    y = repeat(y, copies)
    sample_weight = repeat(sample_weight, copies)
    if sample_weight is not None:
        values = values * tf.reshape(tf.cast(sample_weight, values.dtype), [-1])
    return values, y, sample_weight


def forward(model, x, copies, training=True, groups=None, **record_options):
    """Runs `model` on the K copies of `x` under a recorder; returns (y_pred, record).

    x has one row per example; y_pred one row per copy. The copies begin at
    the first noisy call when the graph allows it (`can_fan_out`), else at
    the input. With layer-wise `groups` (`layer_groups`) each group's copies
    begin at its own layer when the graph allows it (`can_fan_out_by_layer`). `record_options` go to
    `recording.ForwardRecord`. Recurrent layers holding noisy cells run
    unrolled (`keras_glr.recurrence`).
    """
    slots = noisy_layers(model)
    if copies > 1 and groups is not None and can_fan_out_by_layer(model):
        fan_out = "by_layer"
    else:
        fan_out = copies > 1 and can_fan_out(model)
    if not fan_out:
        x = repeat(x, copies)
    padded_graph = model if fan_out == "by_layer" else None
    with recording(copies=copies, fan_out=fan_out, slots=slots, groups=groups, padded_graph=padded_graph,
                   **record_options) as record:
        with recurrence.unrolled(model):
            y_pred = model(x, training=training)
    return y_pred, record


def layer_groups(copies, layers, copies_per_layer=None, antithetic=False, dimensions=None):
    """Layer-wise injection: the copies of each example that each noisy layer owns.

    Returns one (start, size) per noisy layer, in slot order: layer g is
    noisy on copies start_g .. start_g + size_g - 1 of every example and
    noiseless on the others. `copies_per_layer` None splits the K copies
    evenly (the first layers take one more when K does not divide);
    "proportional" splits them in proportion to `dimensions`, each layer's
    noise values per example (`proportional_sizes`); else it lists the
    sizes. Antithetic pairs never straddle two groups.

    Raises ValueError when a layer would get no copy, or the sizes do not
    add up to K (or are odd, with antithetic pairs).
    """
    unit = 2 if antithetic else 1
    if copies_per_layer == "proportional":
        copies_per_layer = proportional_sizes(copies, dimensions, unit)
    if copies_per_layer is None:
        units, extra = divmod(copies // unit, layers)
        sizes = [unit * (units + (g < extra)) for g in range(layers)]
        if units == 0:
            raise ValueError(
                f"Layer-wise injection gives each of the {layers} noisy layers its own copies, so it needs "
                f"copies >= {unit * layers}. Received: copies={copies}."
            )
    else:
        sizes = list(copies_per_layer)
        if len(sizes) != layers or sum(sizes) != copies or any(s < unit or s % unit for s in sizes):
            pairs = " even (antithetic pairs)," if antithetic else ""
            raise ValueError(
                f"Invalid value received for argument `copies_per_layer`: expected {layers} positive{pairs} "
                f"integers, one per noisy layer, that add up to copies={copies}. Received: copies_per_layer={copies_per_layer!r}"
            )
    starts = [sum(sizes[:g]) for g in range(layers)]
    return tuple(zip(starts, sizes))


def proportional_sizes(copies, dimensions, unit=1):
    """K copies split in proportion to `dimensions`, in whole units (pairs with antithetic), at least one unit each.

    Largest remainders: each layer gets the floor of its share of the units
    left after the minimum, and the leftover units go to the largest
    fractional parts (ties to the earlier layer).
    """
    dimensions = [float(d) for d in dimensions]
    units, layers = copies // unit, len(dimensions)
    if units < layers or copies % unit:
        raise ValueError(
            f"Layer-wise injection gives each of the {layers} noisy layers its own copies, so it needs "
            f"copies >= {unit * layers}{' (even, with antithetic pairs)' if unit == 2 else ''}. Received: copies={copies}."
        )
    free = units - layers
    shares = [free * d / sum(dimensions) for d in dimensions]
    sizes = [1 + int(s) for s in shares]
    order = sorted(range(layers), key=lambda g: (-(shares[g] - int(shares[g])), g))
    for g in order[: units - sum(sizes)]:
        sizes[g] += 1
    return [unit * s for s in sizes]


def noise_dimensions(model):
    """Noise values per example of each noisy layer, in slot order (its output size per example)."""
    found = []
    for layer in noisy_layers(model):
        try:
            shape = layer.output.shape[1:]
        except (AttributeError, ValueError):
            shape = None
        if shape is None or any(d is None for d in shape):
            raise ValueError(
                f"copies_per_layer='proportional' needs each noisy layer's output size, and {layer.name!r} has none "
                "known (it was not called on a known shape, or was called more than once). Pass the sizes as a list."
            )
        found.append(int(np.prod(shape)))
    return found


def can_fan_out(model):
    """True when the copies may begin at the model's first noisy call.

    That holds when exactly one noisy call receives per-example tensors and
    no tensor computed before the noise meets one computed after it (a
    residual block around the first noisy layer, say). Decided by walking
    the graph, nested Sequential and functional models included; a layer
    that hides noisy layers in a graph of its own making answers no.
    """
    points = []

    def noisy(layer, state):
        if state == _EXAMPLE:
            points.append(layer)
        return _COPY

    outputs = _final_states(model, _EXAMPLE, noisy)
    return outputs is not None and len(points) == 1 and all(state == _COPY for state in outputs)


def can_fan_out_by_layer(model):
    """True when every layer-wise group's copies may begin at its own layer.

    A tensor's state is the number of noisy slots it has passed (see
    `keras_glr.recording`). Every noisy layer must be called once, on inputs
    that have passed no slot at or after its own, and every slot reached. In
    a `GLRModel`'s own graph tensors of different states may meet (a
    residual addition, a shortcut's noisy layer): the pass pads them to one
    state (`recording.ForwardRecord.padded`), so residual networks fan out.
    Inside a nested model, or in a `GLRSequential`, the noisy layers must
    form a chain: each fed by tensors that passed exactly the slots before
    it, and tensors of different states never meet.
    """
    slots = {id(layer): slot for slot, layer in enumerate(noisy_layers(model))}
    called = []

    def noisy(layer, state, padded=False):
        slot = slots.get(id(layer))
        if slot is None or slot < state or (slot != state and not padded):
            raise _NoFanOut  # out of slot order, or called twice
        called.append(slot)
        return slot + 1

    pads = bool(getattr(model, "pads_merges", False))
    outputs = _final_states(model, 0, noisy, pad=pads)
    if outputs is None or not slots or sorted(called) != list(range(len(slots))):
        return False
    return pads or all(state == len(slots) for state in outputs)


class _NoFanOut(Exception):
    pass


def _final_states(model, initial, noisy, pad=False):
    """The states of `model`'s outputs when its inputs are in state `initial`, or None.

    `noisy(layer, state)` gives a noisy call's output state, or raises
    `_NoFanOut`; other layers keep their inputs' state, which must agree.
    With `pad`, the nodes of `model`'s own graph may take inputs of
    different states: they are padded to the most advanced, and a noisy
    layer's to its slot (`noisy(layer, state, padded=True)`).
    """
    inputs = getattr(model, "inputs", None) or [None]
    try:
        if pad:
            return _walk_graph(model, [initial] * len(inputs), noisy, pad=True)
        return _walk(model, [initial] * len(inputs), noisy)
    except _NoFanOut:
        return None


def _walk(layer, states, noisy, padded=False):
    """States of `layer`'s outputs, given its inputs' states (`padded`: to be padded to the most advanced)."""
    if isinstance(layer, NoisyLayer):
        if padded:
            return [noisy(layer, max(states), padded=True)]
        if len(set(states)) != 1:
            raise _NoFanOut
        return [noisy(layer, states[0])]
    if padded:
        states = [max(states)] * len(states)
    if isinstance(layer, keras.Sequential):
        if len(states) != 1:
            raise _NoFanOut
        for inner in layer.layers:
            states = _walk(inner, states, noisy)
        return states
    if hasattr(layer, "_nodes_by_depth") and getattr(layer, "inputs", None):
        return _walk_graph(layer, states, noisy)
    if hasattr(layer, "_flatten_layers") and noisy_layers(layer):
        raise _NoFanOut  # noisy layers inside a graph we cannot see
    if len(set(states)) > 1:
        raise _NoFanOut
    return states[:1]


def _walk_graph(model, states, noisy, pad=False):
    if len(states) != len(model.inputs):
        raise _NoFanOut
    known = {id(t): s for t, s in zip(model.inputs, states)}
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            if not node.input_tensors:
                continue  # an input layer
            outs = _walk(node.operation, [known[id(t)] for t in node.input_tensors], noisy, padded=pad)
            if len(outs) == 1:
                outs = outs * len(node.output_tensors)
            if len(outs) != len(node.output_tensors):
                raise _NoFanOut
            known.update((id(t), state) for t, state in zip(node.output_tensors, outs))
    result = [known.get(id(t)) for t in model.outputs]
    if any(s is None for s in result):
        raise _NoFanOut
    return result


def replica_share(x):
    """(first, total): this replica's first example in the global batch, and the global batch size.

    Shards may be uneven (a batch that does not divide by the replicas, a
    last partial batch): the sizes are gathered, not assumed.
    """
    local = tf.shape(tf.nest.flatten(x)[0])[0]
    context = tf.distribute.get_replica_context()
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if context is None or replicas == 1:
        return tf.constant(0), local
    index = context.replica_id_in_sync_group
    mine = tf.one_hot(index, replicas) * tf.cast(local, tf.float32)
    sizes = tf.cast(tf.round(context.all_reduce(tf.distribute.ReduceOp.SUM, mine)), tf.int32)
    before = tf.cast(tf.range(replicas) < tf.cast(index, tf.int32), tf.int32)
    return tf.reduce_sum(sizes * before), tf.reduce_sum(sizes)


def in_chunks(one_pass, x, y, sample_weight, first_example, examples_per_chunk, variables, output_spec):
    """Runs `one_pass` over the batch in chunks of whole examples and sums the results.

    Args:
        one_pass: fn(x, y, sample_weight, first_example) -> `Pass`, where
            `first_example` is the index of the part's first example in the
            whole batch (its noise rows).
        x: this replica's inputs.
        y: this replica's labels.
        sample_weight: this replica's sample weights, or None.
        first_example: index of this replica's first example.
        examples_per_chunk: None (or at least the batch size) for one pass.
        variables: the trainable variables the gradients are aligned with.
        output_spec: the model's output (shape and dtype), for the first copies.

    Returns:
        a `Pass`: gradients and loss summed over chunks, first copies
        concatenated. Every example keeps all its copies in one chunk, so
        the baseline is unchanged and the sum equals the one-pass result.
    """
    static_batch = tf.nest.flatten(x)[0].shape[0]
    if examples_per_chunk is None or (static_batch is not None and examples_per_chunk >= static_batch):
        return one_pass(x, y, sample_weight, first_example)
    batch = tf.shape(tf.nest.flatten(x)[0])[0]
    firsts = {"y": y, "y_pred": output_spec, "sample_weight": sample_weight}
    present = [name for name, spec in firsts.items() if spec is not None]

    def body(start, loss, gradients, arrays):
        end = tf.minimum(start + examples_per_chunk, batch)
        xs, ys, ws = (None if s is None else tf.nest.map_structure(lambda t: t[start:end], s) for s in (x, y, sample_weight))
        piece = one_pass(xs, ys, ws, first_example + start)
        gradients = [a if g is None else a + g for a, g in zip(gradients, piece.gradients)]
        index = start // examples_per_chunk
        arrays = [a.write(index, tf.cast(getattr(piece, name), a.dtype)) for a, name in zip(arrays, present)]
        return end, loss + piece.loss, gradients, arrays

    arrays = [_rows_array(firsts[name]) for name in present]
    zeros = [tf.zeros_like(v) for v in variables]
    _, loss, gradients, arrays = tf.while_loop(
        lambda start, *_: start < batch, body, (tf.constant(0), tf.constant(0.0), zeros, arrays)
    )
    firsts = dict(zip(present, (a.concat() for a in arrays)))
    return Pass(gradients, loss, firsts.get("y"), firsts.get("y_pred"), firsts.get("sample_weight"))


def _rows_array(spec):
    """A TensorArray for row blocks of tensors shaped like `spec`, (rows, ...)."""
    shape = tf.TensorShape(spec.shape)
    return tf.TensorArray(
        tf.as_dtype(spec.dtype), size=0, dynamic_size=True, infer_shape=False,
        element_shape=tf.TensorShape([None]).concatenate(shape[1:]),
    )
