"""Noise copies: the row layout, the forward pass over the copies, replicas' shares and chunks.

The K copies of example b occupy rows b*K .. b*K + K - 1 of every tensor
after the first noise. Before it, a *fanned-out* pass computes each example
once: the first noisy call broadcasts its pre-activation to the K copies
(`recording.ForwardRecord`). Where the copies may begin is decided from the
graph in `fan_out`. Every estimator runs its passes through `in_chunks`, so
chunking, fan-out and replicas work the same for all of them.
"""

import dataclasses

import tensorflow as tf

from keras_glr._src import fan_out
from keras_glr._src import recurrence
from keras_glr._src import streams
from keras_glr._src.recording import recording
from keras_glr.layers import noisy_layers


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
    from keras_glr._src import validation

    validation.check_label_shape(y, y_pred)
    if isinstance(sample_weight, (list, tuple, dict)):
        raise ValueError(
            "A GLR model takes one sample weight per example, which weighs the example's whole loss (every output's). "
            "Per-output sample weights are not supported: weigh the outputs with compile(loss_weights=...), and the "
            f"examples with one array of shape (batch,). Received sample weights for {len(sample_weight)} outputs."
        )
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


def forward(
    model, x, copies, training=True, groups=None, antithetic=False, sampling="mc", first_example=0, **record_options
):
    """Runs `model` on the K copies of `x` under a recorder; returns (y_pred, record).

    x has one row per example; y_pred one row per copy. The copies begin at
    the first noisy call when the graph allows it (`fan_out.can_fan_out`),
    else at the input. With layer-wise `groups` (`fan_out.layer_groups`)
    each group's copies begin at its own layer when the graph allows it
    (`fan_out.can_fan_out_by_layer`). `copies`, `antithetic`, `sampling`,
    `first_example` and `groups` make the pass's `streams.CopyLayout`;
    `record_options` go to `recording.ForwardRecord`. Recurrent layers
    holding noisy cells run unrolled (`keras_glr._src.recurrence`).
    """
    slots = noisy_layers(model)
    if copies > 1 and groups is not None and fan_out.can_fan_out_by_layer(model):
        where = "by_layer"
    else:
        where = "first" if copies > 1 and fan_out.can_fan_out(model) else "none"
    if where == "none":
        x = repeat(x, copies)
    layout = streams.CopyLayout(copies, antithetic, sampling, first_example, where, groups)
    layerwise = None
    if where == "by_layer":
        layerwise = fan_out.LayerwisePass(
            layout,
            {id(layer): slot for slot, layer in enumerate(slots)},
            graph=model if getattr(model, "pads_merges", False) else None,
        )
    with recording(layout=layout, slots=slots, layerwise=layerwise, **record_options) as record:
        with recurrence.unrolled(model):
            y_pred = model(x, training=training)
    return y_pred, record


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
        output_spec: the model's output (shape and dtype; a structure with
            several outputs), for the first copies.

    Returns:
        a `Pass`: gradients and loss summed over chunks, first copies
        concatenated. Every example keeps all its copies in one chunk, so
        the baseline is unchanged and the sum equals the one-pass result.
    """
    static_batch = tf.nest.flatten(x)[0].shape[0]
    if examples_per_chunk is None or (static_batch is not None and examples_per_chunk >= static_batch):
        return one_pass(x, y, sample_weight, first_example)
    batch = tf.shape(tf.nest.flatten(x)[0])[0]
    # The first copies of every chunk, row blocks of each tensor of y, y_pred (a structure with several outputs)
    # and sample_weight: one TensorArray per tensor.
    firsts = {"y": y, "y_pred": output_spec, "sample_weight": sample_weight}
    present = [name for name, spec in firsts.items() if spec is not None]
    leaves = [tf.nest.flatten(firsts[name]) for name in present]

    def body(start, loss, gradients, arrays):
        end = tf.minimum(start + examples_per_chunk, batch)
        xs, ys, ws = (
            None if s is None else tf.nest.map_structure(lambda t: t[start:end], s) for s in (x, y, sample_weight)
        )
        piece = one_pass(xs, ys, ws, first_example + start)
        gradients = [a if g is None else a + g for a, g in zip(gradients, piece.gradients)]
        index = start // examples_per_chunk
        written = [t for name in present for t in tf.nest.flatten(getattr(piece, name))]
        arrays = [a.write(index, tf.cast(t, a.dtype)) for a, t in zip(arrays, written)]
        return end, loss + piece.loss, gradients, arrays

    arrays = [_rows_array(spec) for group in leaves for spec in group]
    zeros = [tf.zeros_like(v) for v in variables]
    _, loss, gradients, arrays = tf.while_loop(
        lambda start, *_: start < batch, body, (tf.constant(0), tf.constant(0.0), zeros, arrays)
    )
    rows, found = [a.concat() for a in arrays], {}
    for name, group in zip(present, leaves):
        found[name] = tf.nest.pack_sequence_as(firsts[name], rows[: len(group)])
        rows = rows[len(group) :]
    return Pass(gradients, loss, found.get("y"), found.get("y_pred"), found.get("sample_weight"))


def _rows_array(spec):
    """A TensorArray for row blocks of tensors shaped like `spec`, (rows, ...)."""
    shape = tf.TensorShape(spec.shape)
    return tf.TensorArray(
        tf.as_dtype(spec.dtype),
        size=0,
        dynamic_size=True,
        infer_shape=False,
        element_shape=tf.TensorShape([None]).concatenate(shape[1:]),
    )
