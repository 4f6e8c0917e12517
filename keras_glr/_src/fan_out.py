"""Where the copies begin: the graph walk that decides it, layer-wise groups of copies, and padding at merges.

A pass repeats each example K times. Rows before the first noise are equal
across an example's copies, so a *fanned-out* pass computes them once: the
first noisy call broadcasts its pre-activation to the K copies
(`can_fan_out`). Layer-wise injection gives each noisy layer its own group
of copies (`layer_groups`), noiseless up to that layer, so each group's
copies can begin at its own layer (`can_fan_out_by_layer`): before it they
are one *clean* row per example. The rows of example b entering the noisy
layer of group g are the copies of the groups before g, then the clean row;
the layer turns the clean row into its group's copies and keeps it for the
groups after g (the last layer drops it). `LayerwisePass` does this during
the forward pass, and pads the inputs of a merge (a residual addition) that
joins tensors of different states to one.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from keras_glr._src import keras_private
from keras_glr._src import streams
from keras_glr._src.recording import Entry
from keras_glr.layers import NoisyLayer
from keras_glr.layers import noisy_layers

_EXAMPLE, _COPY = "example", "copy"


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
                f"integers, one per noisy layer, that add up to copies={copies}. Received: "
                f"copies_per_layer={copies_per_layer!r}"
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
            f"copies >= {unit * layers}{' (even, with antithetic pairs)' if unit == 2 else ''}. Received: "
            f"copies={copies}."
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

    A tensor's state is the number of noisy slots it has passed (see `LayerwisePass`). Every noisy layer must be called
    once, on inputs
    that have passed no slot at or after its own, and every slot reached. In
    a `GLRModel`'s own graph tensors of different states may meet (a
    residual addition, a shortcut's noisy layer): the pass pads them to one
    state (`LayerwisePass.padded`), so residual networks fan out.
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
    if keras_private.is_graph(layer):
        return _walk_graph(layer, states, noisy)
    if isinstance(layer, keras.layers.Layer) and noisy_layers(layer):
        raise _NoFanOut  # noisy layers inside a graph we cannot see
    if len(set(states)) > 1:
        raise _NoFanOut
    return states[:1]


def _walk_graph(model, states, noisy, pad=False):
    if len(states) != len(model.inputs):
        raise _NoFanOut
    known = {id(t): s for t, s in zip(model.inputs, states)}
    for node in keras_private.graph_nodes(model):
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


class LayerwisePass:
    """Layer-wise fan-out during one forward pass: each noisy layer fans its clean rows out into its group's copies.

    A tensor's *state* is the number of noisy slots it has passed. Its rows
    per example are the copies of the groups before that state, then the
    clean row (none after the last group). The recorder hands each noisy
    call to `perturb`; the model's graph runs each node through `padded`
    (`keras_private.GraphHooks`), so merges see one state.

    Args:
        layout: the pass's `streams.CopyLayout` (its `groups` set).
        slots: {id(layer): slot} of the noisy layers, in the order of
            `keras_glr.layers.noisy_layers`.
        graph: the functional model whose nodes `padded` pads (the model the
            pass runs), or None when the noisy layers form a chain.
    """

    def __init__(self, layout, slots, graph=None):
        self.layout = layout
        self.slots = slots
        self.graph = graph
        self.states = {}  # id(tensor) -> (tensor, its state)

    def perturb(self, record, layer, inputs):
        """`inputs` has (start + 1) rows per example, the earlier groups' copies and the clean row.

        Returns (start + size + 1) rows per example of v: the earlier copies,
        noiseless here; the group's copies g(clean) + r; g(clean), dropped
        after the last group. Records the group's entry, whose estimate is a
        VJP at the clean row: one row per example.
        """
        layout = self.layout
        stream = record.next_stream(layer)
        start, size = record.group_of(layer)
        examples = tf.shape(_first_tensor(inputs))[0] // (start + 1)
        rows = _map_tensors(lambda t: tf.reshape(t, _shape([examples, start + 1], t)), inputs)
        clean = layer.pre_activation(_map_tensors(lambda t: t[:, start], rows))
        units = math.prod(int(d) for d in clean.shape[1:])
        drawn = size // 2 if layout.antithetic else size
        drawn_layout = streams.CopyLayout(copies=drawn, sampling=layout.sampling, first_example=layout.first_example)
        pairs = streams.call_noise(layer.noise, record.key, stream, examples, units, drawn_layout)
        pairs = tf.reshape(tf.cast(pairs, clean.dtype), _shape([examples, drawn], clean))
        copies_of_clean = tf.expand_dims(clean, 1)
        if layout.antithetic:
            # Copies 2j and 2j + 1 are clean + r and clean - r (`streams.call_noise`'s order).
            r = tf.stack([pairs, -pairs], axis=2)
            group = tf.stack([copies_of_clean + pairs, copies_of_clean - pairs], axis=2)
        else:
            r, group = pairs, copies_of_clean + pairs
        r = tf.reshape(r, _shape([-1], clean))
        parts = [tf.reshape(group, _shape([examples, size], clean))]
        if start:
            earlier = layer.pre_activation(
                _map_tensors(lambda t: tf.reshape(t[:, :start], tf.concat([[-1], tf.shape(t)[2:]], axis=0)), rows)
            )
            parts.insert(0, tf.reshape(earlier, _shape([examples, start], clean)))
        if start + size < layout.copies:
            parts.append(copies_of_clean)
        pairs = tf.reshape(pairs, _shape([-1], clean)) if layout.antithetic else None
        record.entries.append(
            Entry(
                layer,
                tf.reshape(group, tf.shape(r)),
                r,
                layer.noise,
                layout.copies,
                clean,
                stream,
                group=(start, size),
                pairs=pairs,
            )
        )
        return tf.reshape(tf.concat(parts, axis=1), _shape([-1], clean))

    def pads(self, model):
        """True when this pass pads the calls of `model`'s graph (layer-wise fan-out through merges)."""
        return model is self.graph

    def padded(self, operation, call):
        """`call`, one node of the padded graph, with every input tensor padded to one state; records its outputs'
        state.

        The state is the most advanced input's, or for a noisy layer its slot
        (its group's copies begin there). The model's inputs are in state 0.
        """
        slot = self.slots.get(id(operation))  # None for a layer that is not noisy

        def run(*args, **kwargs):
            if slot is None:
                state = max((self._state(t) for t in tf.nest.flatten((args, kwargs)) if tf.is_tensor(t)), default=0)
            else:
                state = slot
            args, kwargs = tf.nest.map_structure(lambda t: self.pad(t, state) if tf.is_tensor(t) else t, (args, kwargs))
            outputs = call(*args, **kwargs)
            for t in tf.nest.flatten(outputs):
                if tf.is_tensor(t):
                    self.states[id(t)] = (t, state + 1 if slot is not None else state)
            return outputs

        return run

    def pad(self, t, state):
        """`t` (rows of its recorded state, state 0 if none) padded to `state`: its clean row copied into the groups in
        between.

        Raises ValueError for a tensor more advanced than `state`.
        """
        before = self._state(t)
        if before == state:
            return t
        if before > state:
            raise ValueError(
                f"Layer-wise fan-out: a tensor that passed {before} noisy layers reached a call that expects {state}. "
                "The noisy layers are not called in slot order; compile with injection='all'."
            )
        groups, copies = self.layout.groups, self.layout.copies
        starts = [start for start, _ in groups] + [copies]
        rows_before = starts[before] + 1
        examples = tf.shape(t)[0] // rows_before
        rows = tf.reshape(t, _shape([examples, rows_before], t))
        clean = rows[:, rows_before - 1 :]
        rows = tf.concat([rows, tf.repeat(clean, starts[state] - starts[before], axis=1)], axis=1)
        if state == len(groups):
            rows = rows[:, :copies]  # after the last group: the K copies, no clean row
        padded = tf.reshape(rows, _shape([-1], t))
        self.states[id(padded)] = (padded, state)
        return padded

    def padded_outputs(self, outputs):
        """The model's outputs, each padded to the last state: K copies per example."""
        return tf.nest.map_structure(lambda t: self.pad(t, len(self.layout.groups)) if tf.is_tensor(t) else t, outputs)

    def _state(self, t):
        known = self.states.get(id(t))
        return 0 if known is None else known[1]


def _map_tensors(function, structure):
    """`function` applied to every tensor of `structure` (a tensor, or the arguments of a call); the rest kept."""
    return tf.nest.map_structure(lambda t: function(t) if tf.is_tensor(t) else t, structure)


def _first_tensor(structure):
    return next(t for t in tf.nest.flatten(structure) if tf.is_tensor(t))


def _shape(leading, like):
    """`leading` dimensions followed by those of one row of `like`: [*leading, *tf.shape(like)[1:]]."""
    return tf.concat([leading, tf.shape(like)[1:]], axis=0)
