"""The forward-pass recorder: how noisy layers report their signals.

Like `tf.GradientTape`, a record is explicit and scoped:

    with recording(copies=100) as record:
        y_pred = model(x)
    for entry in record.entries:          # one per noisy call, in call order
        entry.layer, entry.pre_activation, entry.score

Inside the `with` block every call of a noisy layer adds noise to its
pre-activation, v = g(x; theta) + r, and appends (layer, v, s(r)) to
`record.entries`: a layer called twice reports twice, with independent noise.
Outside one, noisy layers are deterministic (unless `noisy_inference=True`).

Copies. The K noise copies of example b occupy rows b*K .. b*K + K - 1. With
`fan_out=True` the model's input has one row per example and the first noisy
layer repeats its noiseless pre-activation K times, so everything before the
first noise is computed once per example, not K times.

Layer-wise injection fans out at every noisy layer (`fan_out="by_layer"`):
the copies of a layer's group are noiseless up to that layer, so before it
they are one *clean* row per example. The rows of example b entering the
noisy layer of group g are the copies of the groups before g, then the clean
row; the layer turns the clean row into its group's copies and keeps it for
the groups after g (the last layer drops it). Each layer then runs on the
copies of the earlier groups only, and its estimate is a VJP at the clean
row, which it computes apart from the copies: one row per example.
"""

import contextlib
import dataclasses
import math
import threading

import tensorflow as tf
from keras import ops

from keras_glr import streams

_state = threading.local()


@dataclasses.dataclass
class Entry:
    """What one call of a noisy layer reported.

    Attributes:
        layer: the reporting layer.
        pre_activation: v = g(x; theta) + r, shape (N, ...) with N = batch * K.
        noise: r, same shape as `pre_activation`.
        distribution: the `NoiseDistribution` r was drawn from.
        copies: K.
        clean: g(x; theta) with one row per example, shape (B, ...), when the
            layer fanned the examples out into copies; else None.
        stream: the id of the call's noise stream (`streams.stream_id`).
        row_scale: None, or per-row multipliers of shape (N,) for layer-wise
            injection: K / K_g on the rows of the layer's group of copies (its
            estimate is a mean over K_g copies, not K), 0 elsewhere.
        group: None, or (start, size) when the layer fanned the clean rows
            out into its group's copies only (`fan_out="by_layer"`): then
            `pre_activation` and `noise` have B * size rows, the group's
            copies, and the estimate is scaled by K / size.
        pairs: None, or with antithetic pairs and `group`: the first partner
            of each pair, r_bj for copies 2j (copy 2j + 1 is -r_bj), B * size
            / 2 rows. The estimate then reads half the noise: s is odd (the
            density is symmetric), so w_2j s(r) + w_2j+1 s(-r) = (w_2j - w_2j+1) s(r).
    """

    layer: object
    pre_activation: object
    noise: object
    distribution: object
    copies: int = 1
    clean: object = None
    stream: int = 0
    row_scale: object = None
    group: tuple = None
    pairs: object = None

    @property
    def score(self):
        """s(r), same shape as `pre_activation`."""
        return self.distribution.score(self.noise)

    def weighted_score(self, weights):
        """weights[n] * s(r)[n, ...] for per-row weights of shape (N,)."""
        return self.distribution.weighted_score(self.noise, weights)

    def target_and_cotangent(self, weights):
        """(tensor, cotangent) whose VJP is this layer's GLR estimate.

        sum_n weights[n] * s(r_n) * dv_n/dtheta. For a fanned-out layer
        v_n = clean_b + r_n, so the K copies of example b are summed first:
        the VJP of `clean` at sum_k weights[b, k] * s(r_bk), shape (B, ...).
        """
        if self.row_scale is not None:
            weights = weights * tf.cast(self.row_scale, weights.dtype)
        if self.group is not None:
            start, size = self.group
            weights = tf.reshape(weights, [-1, self.copies])[:, start : start + size] * (self.copies / size)
            if self.pairs is not None:
                pair_weights = tf.reshape(weights[:, 0::2] - weights[:, 1::2], [-1])
                return self.clean, self.distribution.summed_weighted_score(self.pairs, pair_weights, size // 2)
            return self.clean, self.distribution.summed_weighted_score(self.noise, tf.reshape(weights, [-1]), size)
        if self.clean is None:
            return self.pre_activation, self.weighted_score(weights)
        return self.clean, self.distribution.summed_weighted_score(self.noise, weights, self.copies)


class ForwardRecord:
    """Collects the noisy calls' reports during one forward pass.

    Args:
        copies: K, noise copies per example.
        noise: whether layers add noise (False gives the noiseless network).
        local: whether layers stop the gradient at their inputs, so that
            differentiating a layer's pre-activation reaches its own weights
            only (the GLR locality rule).
        antithetic: draw noise in pairs (r, -r): copies 2j and 2j+1 of an
            example are partners. Needs an even K.
        fan_out: True when the model's input has one row per example; the
            first noisy call then broadcasts its pre-activation to K rows.
            "by_layer", with `groups`: every noisy call fans its clean rows
            out into its group's copies (see the module docstring); the
            noisy layers must form a chain, called once each in slot order
            (`copies.can_fan_out_by_layer`).
        straight_through: False, or a dict {"slope": None or float}: step
            and sign units then pass gradients straight through (see
            `keras_glr.activations.straight_through`).
        key: the pass's Philox key (uint64, shape (1,)); None draws one from
            TensorFlow's global generator. Every call of every noisy layer
            reads its own stream under it (see `keras_glr.streams`).
        first_example: index, in the whole batch, of this pass's first
            example: chunked passes and replicas read the rows of one pass
            over the whole batch.
        slots: the noisy layers in slot order (`keras_glr.layers.noisy_layers`);
            layers not listed take the next slots in the order they are
            first called.
        purpose: `streams.TRAINING` or `streams.PREDICTION`.
        groups: None (every call is noisy on every copy), or layer-wise
            injection: one (start, size) per slot, the copies k of each
            example with start <= k < start + size on which the layer in that
            slot is noisy; on the other copies it adds no noise and its
            estimate takes no term (`copies.layer_groups`).
        sampling: "mc", "latin" or "sobol" (`streams.call_noise`).
        padded_graph: with `fan_out="by_layer"`, the functional model whose
            calls `padded` pads to a common state (the model the pass runs);
            None when the noisy layers form a chain.
    """

    def __init__(self, copies=1, noise=True, local=True, antithetic=False, fan_out=False, straight_through=False,
                 key=None, first_example=0, slots=(), purpose=streams.TRAINING, groups=None, sampling="mc",
                 padded_graph=None):
        if antithetic and copies % 2:
            raise ValueError(f"Antithetic noise needs an even number of copies. Received: copies={copies}")
        self.copies = copies
        self.noise = noise
        self.local = local
        self.antithetic = antithetic
        if fan_out == "by_layer" and groups is None:
            raise ValueError('fan_out="by_layer" fans out into the groups of layer-wise injection; pass `groups`.')
        self.by_layer = fan_out == "by_layer"
        self.fanned_out = not fan_out
        self.straight_through = straight_through
        self.key = streams.fresh_key() if key is None and noise else key
        self.first_example = first_example
        self.purpose = purpose
        self.groups = groups
        self.sampling = sampling
        self._slots = {id(layer): index for index, layer in enumerate(slots)}
        self._calls = {}
        self._padded_graph = padded_graph
        self._states = {}
        self.entries = []
        self._graph = tf.compat.v1.get_default_graph()

    def check_call_site(self, layer):
        """Raises ValueError when `layer` would record noise inside a `tf.while_loop` opened after this record.

        A report made in a loop body cannot leave the loop, so the estimate
        could not read it. `keras.layers.RNN` layers are unrolled for noisy
        records (`keras_glr.recurrence`); this catches other loops.
        """
        if not self.noise:
            return
        graph = tf.compat.v1.get_default_graph()
        while graph is not None and graph is not self._graph:
            if type(graph).__name__ == "WhileBodyFuncGraph":
                raise ValueError(
                    f"Noisy layer '{layer.name}' is called inside a tf.while_loop, where a GLR step cannot record its "
                    "noise: the loss that weighs each step's noise is only known after the loop. Wrap the recurrence "
                    "in keras.layers.RNN (a GLR step runs it unrolled), or call the layer once per time step in "
                    "Python: every call draws its own noise."
                )
            graph = getattr(graph, "outer_graph", None)

    def perturb(self, layer, v):
        """Returns v + r for `layer`'s noiseless pre-activation `v`; records it.

        r is this call's own stream. At the first noisy call of a fanned-out
        pass, v has one row per example and v + r one row per copy: the rows
        are broadcast, not repeated first.
        """
        if self.by_layer and self.noise:
            return self._perturb_group(layer, v)
        fan_out = not self.fanned_out
        self.fanned_out = True
        if not self.noise:
            return ops.repeat(v, self.copies, axis=0) if fan_out else v
        stream = self._next_stream(layer)
        rows = tf.shape(v)[0]
        examples = rows if fan_out else rows // self.copies
        units = math.prod(int(d) for d in v.shape[1:])
        if self.groups is None:
            row_scale = None
            r = streams.call_noise(
                layer.noise, self.key, stream, examples, self.first_example, self.copies, units, self.antithetic, self.sampling
            )
        else:
            start, size, row_scale = self._group(layer, examples)
            r = streams.call_noise(
                layer.noise, self.key, stream, examples, self.first_example, size, units, self.antithetic, self.sampling
            )
            padding = [[0, 0], [start, self.copies - start - size], [0, 0]]
            r = tf.reshape(tf.pad(tf.reshape(r, [examples, size, units]), padding), [examples * self.copies, units])
        shape = tf.concat([[examples * self.copies], tf.shape(v)[1:]], axis=0)
        r = tf.reshape(tf.cast(r, v.dtype), shape)
        clean = v
        if fan_out:
            per_example = tf.concat([[-1, self.copies], tf.shape(v)[1:]], axis=0)
            v = tf.reshape(tf.reshape(r, per_example) + tf.expand_dims(v, 1), shape)
        else:
            v = v + r
        self.entries.append(Entry(layer, v, r, layer.noise, self.copies, clean if fan_out else None, stream, row_scale))
        return v

    def noisy_pre_activation(self, layer, inputs):
        """Returns v = g(inputs; theta) + r for `layer`, recorded (see `perturb`).

        With layer-wise fan-out the clean row's pre-activation is computed
        apart from the copies', so that the layer's estimate, a VJP at it,
        runs on one row per example.
        """
        if self.by_layer and self.noise:
            return self._perturb_group(layer, inputs)
        return self.perturb(layer, layer.pre_activation(inputs))

    def _perturb_group(self, layer, inputs):
        """Layer-wise fan-out: `inputs` has (start + 1) rows per example, the earlier groups' copies and the clean row.

        Returns (start + size + 1) rows per example of v: the earlier copies,
        noiseless here; the group's copies g(clean) + r; g(clean), dropped
        after the last group.
        """
        stream = self._next_stream(layer)
        start, size = self._slot_group(layer)
        examples = tf.shape(inputs)[0] // (start + 1)
        rows = tf.reshape(inputs, _shape([examples, start + 1], inputs))
        clean = layer.pre_activation(rows[:, start])
        units = math.prod(int(d) for d in clean.shape[1:])
        drawn = size // 2 if self.antithetic else size
        pairs = streams.call_noise(layer.noise, self.key, stream, examples, self.first_example, drawn, units, sampling=self.sampling)
        pairs = tf.reshape(tf.cast(pairs, clean.dtype), _shape([examples, drawn], clean))
        copies_of_clean = tf.expand_dims(clean, 1)
        if self.antithetic:
            # Copies 2j and 2j + 1 are clean + r and clean - r (`streams.call_noise`'s order).
            r = tf.stack([pairs, -pairs], axis=2)
            group = tf.stack([copies_of_clean + pairs, copies_of_clean - pairs], axis=2)
        else:
            r, group = pairs, copies_of_clean + pairs
        r = tf.reshape(r, _shape([-1], clean))
        parts = [tf.reshape(group, _shape([examples, size], clean))]
        if start:
            earlier = layer.pre_activation(tf.reshape(rows[:, :start], _shape([-1], inputs)))
            parts.insert(0, tf.reshape(earlier, _shape([examples, start], clean)))
        if start + size < self.copies:
            parts.append(copies_of_clean)
        pairs = tf.reshape(pairs, _shape([-1], clean)) if self.antithetic else None
        self.entries.append(
            Entry(layer, tf.reshape(group, tf.shape(r)), r, layer.noise, self.copies, clean, stream, group=(start, size), pairs=pairs)
        )
        return tf.reshape(tf.concat(parts, axis=1), _shape([-1], clean))

    def copies_per_row(self, layer):
        """How many of an example's K copies each of its rows entering `layer` stands for: a list, or None for one each.

        With layer-wise fan-out the rows entering the layer of slot g are the
        earlier groups' copies (one each) and the clean row, which stands for
        the K - start_g copies that are noiseless up to the layer.
        """
        if not (self.by_layer and self.noise):
            return None
        start, _ = self._slot_group(layer)
        return [1.0] * start + [float(self.copies - start)]

    def pads(self, model):
        """True when this pass pads the calls of `model`'s graph (layer-wise fan-out through merges)."""
        return self.by_layer and self.noise and model is self._padded_graph

    def padded(self, operation, call):
        """`call`, one node of the padded graph, with every input tensor padded to one state; records its outputs' state.

        The state is the most advanced input's, or for a noisy layer its slot
        (its group's copies begin there). The model's inputs are in state 0.
        """
        slot = self._slots.get(id(operation))  # None for a layer that is not noisy

        def run(*args, **kwargs):
            if slot is None:
                state = max((self._state(t) for t in tf.nest.flatten((args, kwargs)) if tf.is_tensor(t)), default=0)
            else:
                state = slot
            args, kwargs = tf.nest.map_structure(lambda t: self.pad(t, state) if tf.is_tensor(t) else t, (args, kwargs))
            outputs = call(*args, **kwargs)
            for t in tf.nest.flatten(outputs):
                if tf.is_tensor(t):
                    self._states[id(t)] = (t, state + 1 if slot is not None else state)
            return outputs

        return run

    def pad(self, t, state):
        """`t` (rows of its recorded state, state 0 if none) padded to `state`: its clean row copied into the groups in between.

        Rows per example: the copies of the groups before the state, then
        the clean row (none after the last group). Raises ValueError for a
        tensor more advanced than `state`.
        """
        before = self._state(t)
        if before == state:
            return t
        if before > state:
            raise ValueError(
                f"Layer-wise fan-out: a tensor that passed {before} noisy layers reached a call that expects {state}. "
                "The noisy layers are not called in slot order; compile with injection='all'."
            )
        starts = [start for start, _ in self.groups] + [self.copies]
        rows_before = starts[before] + 1
        examples = tf.shape(t)[0] // rows_before
        rows = tf.reshape(t, _shape([examples, rows_before], t))
        clean = rows[:, rows_before - 1 :]
        rows = tf.concat([rows, tf.repeat(clean, starts[state] - starts[before], axis=1)], axis=1)
        if state == len(self.groups):
            rows = rows[:, : self.copies]  # after the last group: the K copies, no clean row
        padded = tf.reshape(rows, _shape([-1], t))
        self._states[id(padded)] = (padded, state)
        return padded

    def padded_outputs(self, outputs):
        """The model's outputs, each padded to the last state: K copies per example."""
        return tf.nest.map_structure(lambda t: self.pad(t, len(self.groups)) if tf.is_tensor(t) else t, outputs)

    def _state(self, t):
        known = self._states.get(id(t))
        return 0 if known is None else known[1]

    def _slot_group(self, layer):
        """`layer`'s group of copies (start, size); raises ValueError when it has none."""
        slot = self._slots[id(layer)]
        if slot >= len(self.groups):
            raise ValueError(
                f"Layer-wise injection has copy groups for {len(self.groups)} noisy layers, but "
                f"{layer.name!r} is noisy layer {slot + 1}. Give `copies_per_layer` one entry per noisy layer."
            )
        return self.groups[slot]

    def _group(self, layer, examples):
        """`layer`'s group of copies (start, size) and its row scale, shape (examples * K,): K / size on the group, 0 elsewhere.

        Only the group's copies are drawn (and stratified, with "latin" or "sobol"); the
        layer adds zeros on the other copies.
        """
        start, size = self._slot_group(layer)
        pattern = [self.copies / size if start <= k < start + size else 0.0 for k in range(self.copies)]
        return start, size, tf.tile(tf.constant(pattern, tf.float32), [examples])

    def _next_stream(self, layer):
        """This call's stream: the layer's slot and the call's index within the pass."""
        if id(layer) not in self._slots:
            self._slots[id(layer)] = len(self._slots)
        call = self._calls.get(id(layer), 0)
        self._calls[id(layer)] = call + 1
        return streams.stream_id(self._slots[id(layer)], call, self.purpose)


def _shape(leading, like):
    """`leading` dimensions followed by those of one row of `like`: [*leading, *tf.shape(like)[1:]]."""
    return tf.concat([leading, tf.shape(like)[1:]], axis=0)


def current():
    """Returns the innermost active `ForwardRecord`, or None."""
    stack = getattr(_state, "stack", None)
    return stack[-1] if stack else None


@contextlib.contextmanager
def recording(**kwargs):
    """Context manager that activates a `ForwardRecord(**kwargs)`."""
    record = ForwardRecord(**kwargs)
    if not hasattr(_state, "stack"):
        _state.stack = []
    _state.stack.append(record)
    try:
        yield record
    finally:
        _state.stack.pop()
