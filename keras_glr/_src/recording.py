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

Copies. The K noise copies of example b occupy rows b*K .. b*K + K - 1 (a
`streams.CopyLayout`). With `fan_out="first"` the model's input has one row
per example and the first noisy layer repeats its noiseless pre-activation K
times, so everything before the first noise is computed once per example,
not K times. Layer-wise fan-out, where every noisy layer fans out its own
group of copies, is `fan_out.LayerwisePass`: the recorder hands it the
noisy calls. The recorder only records; what the estimate makes of the
entries is `keras_glr._src.estimators`.
"""

import contextlib
import dataclasses
import math
import threading

import tensorflow as tf
from keras import ops

from keras_glr._src import streams

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
            out into its group's copies only (`fan_out.LayerwisePass`): then
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


class ForwardRecord:
    """Collects the noisy calls' reports during one forward pass.

    Args:
        layout: the pass's `streams.CopyLayout` (copies, antithetic pairs,
            sampling, first example, where the copies begin, layer-wise
            groups); or give its fields as keywords: `copies=4`,
            `antithetic=True`, `fan_out=True` (the first noisy call
            broadcasts), ...
        noise: whether layers add noise (False gives the noiseless network).
        local: whether layers stop the gradient at their inputs, so that
            differentiating a layer's pre-activation reaches its own weights
            only (the GLR locality rule).
        straight_through: False, or a dict {"slope": None or float}: step
            and sign units then pass gradients straight through (see
            `keras_glr.activations.straight_through`).
        key: the pass's Philox key (uint64, shape (1,)); None draws one from
            TensorFlow's global generator. Every call of every noisy layer
            reads its own stream under it (see `keras_glr._src.streams`).
        slots: the noisy layers in slot order (`keras_glr.layers.noisy_layers`);
            layers not listed take the next slots in the order they are
            first called.
        purpose: `streams.TRAINING` or `streams.PREDICTION`.
        layerwise: with `layout.fan_out == "by_layer"`, the
            `fan_out.LayerwisePass` that fans each noisy call out into its
            group's copies and pads the model's merges.
        observe: with `noise=False`, still record each call's noiseless
            pre-activation (an `Entry` whose noise is None): what
            `convert` calibrates its noise scales from.

    With layer-wise `groups` and no fan-out, every noisy call sees all K
    copies and adds noise on its group's copies only; on the others its
    estimate takes no term.
    """

    def __init__(
        self,
        layout=None,
        noise=True,
        local=True,
        straight_through=False,
        key=None,
        slots=(),
        purpose=streams.TRAINING,
        layerwise=None,
        observe=False,
        **layout_fields,
    ):
        self.layout = layout if layout is not None else streams.CopyLayout(**layout_fields)
        if self.layout.fan_out == "by_layer" and layerwise is None:
            raise ValueError('fan_out="by_layer" needs the pass\'s `layerwise` (a `fan_out.LayerwisePass`).')
        self.copies = self.layout.copies
        self.noise = noise
        self.local = local
        self.straight_through = straight_through
        self.key = streams.fresh_key() if key is None and noise else key
        self.purpose = purpose
        self.layerwise = layerwise
        self.observe = observe
        self.fanned_out = self.layout.fan_out == "none"
        self.slots = {id(layer): index for index, layer in enumerate(slots)}
        self.calls = {}
        self.entries = []
        self._graph = tf.compat.v1.get_default_graph()

    def check_call_site(self, layer):
        """Raises ValueError when `layer` would record noise inside a `tf.while_loop` opened after this record.

        A report made in a loop body cannot leave the loop, so the estimate
        could not read it. `keras.layers.RNN` layers are unrolled for noisy
        records (`keras_glr._src.recurrence`); this catches other loops.
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
        layout = self.layout
        fan_out = not self.fanned_out
        self.fanned_out = True
        if not self.noise:
            if self.observe:
                self.entries.append(Entry(layer, v, None, layer.noise))
            return ops.repeat(v, self.copies, axis=0) if fan_out else v
        stream = self.next_stream(layer)
        rows = tf.shape(v)[0]
        examples = rows if fan_out else rows // self.copies
        units = math.prod(int(d) for d in v.shape[1:])
        if layout.groups is None:
            row_scale = None
            r = streams.call_noise(layer.noise, self.key, stream, examples, units, layout)
        else:
            start, size, row_scale = self._group(layer, examples)
            r = streams.call_noise(
                layer.noise, self.key, stream, examples, units, dataclasses.replace(layout, copies=size)
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

        With layer-wise fan-out the layer's `LayerwisePass` computes the
        clean row's pre-activation apart from the copies', so that the
        layer's estimate, a VJP at it, runs on one row per example.
        """
        if self.layerwise is not None and self.noise:
            return self.layerwise.perturb(self, layer, inputs)
        return self.perturb(layer, layer.pre_activation(inputs))

    def copies_per_row(self, layer):
        """How many of an example's K copies each of its rows entering `layer` stands for: a list, or None for one each.

        With layer-wise fan-out the rows entering the layer of slot g are the
        earlier groups' copies (one each) and the clean row, which stands for
        the K - start_g copies that are noiseless up to the layer.
        """
        if self.layerwise is None or not self.noise:
            return None
        start, _ = self.group_of(layer)
        return [1.0] * start + [float(self.copies - start)]

    def group_of(self, layer):
        """`layer`'s group of copies (start, size); raises ValueError when it has none."""
        slot, groups = self.slots[id(layer)], self.layout.groups
        if slot >= len(groups):
            raise ValueError(
                f"Layer-wise injection has copy groups for {len(groups)} noisy layers, but "
                f"{layer.name!r} is noisy layer {slot + 1}. Give `copies_per_layer` one entry per noisy layer."
            )
        return groups[slot]

    def _group(self, layer, examples):
        """`layer`'s group of copies (start, size) and its row scale, shape (examples * K,): K / size on the group, 0
        elsewhere.

        Only the group's copies are drawn (and stratified, with "latin" or "sobol"); the
        layer adds zeros on the other copies.
        """
        start, size = self.group_of(layer)
        pattern = [self.copies / size if start <= k < start + size else 0.0 for k in range(self.copies)]
        return start, size, tf.tile(tf.constant(pattern, tf.float32), [examples])

    def next_stream(self, layer):
        """This call's stream: the layer's slot and the call's index within the pass."""
        if id(layer) not in self.slots:
            self.slots[id(layer)] = len(self.slots)
        call = self.calls.get(id(layer), 0)
        self.calls[id(layer)] = call + 1
        return streams.stream_id(self.slots[id(layer)], call, self.purpose)


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
