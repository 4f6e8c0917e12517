"""The private Keras APIs keras_glr needs, each in one place with the reason.

Keras 3 offers no public way to do what these do. When a Keras release
changes one, this module is the one to update; `tests/test_keras_private.py`
checks each against the installed Keras.
"""


def sublayers(layer, include_self=False):
    """Every layer inside `layer`, nested models and wrappers included, in order (`_flatten_layers`).

    Why: `Model.layers` lists the direct children only; the estimator must
    see every noisy layer, also inside nested models, `Noisy` blocks and RNN
    cells.
    """
    return list(layer._flatten_layers(include_self=include_self, recursive=True))


def is_graph(layer):
    """Whether `layer` is a built functional graph whose nodes `graph_nodes` can walk."""
    return hasattr(layer, "_nodes_by_depth") and bool(getattr(layer, "inputs", None))


def graph_nodes(model):
    """The nodes of a functional graph, inputs first (`_nodes_by_depth`, deepest first).

    Why: where the copies of layer-wise fan-out branch, and whether a merge
    needs padding, is decided by walking the graph in order; Keras exposes
    the nodes only through this map.
    """
    return [node for depth in sorted(model._nodes_by_depth, reverse=True) for node in model._nodes_by_depth[depth]]


def own_trainable_variables(layer):
    """The trainable variables `layer` itself creates, not those of its sublayers (`_trainable_variables`).

    Why: a trainable layer without noise is an error only for its own
    weights; `trainable_weights` includes the nested layers'.
    """
    return [w for w in layer._trainable_variables if w.trainable]


def record_compile_options(model, values):
    """Adds `values` to what `compile` recorded (`_compile_config`), so a saved model is compiled again with them.

    Why: `keras.saving.load_model` calls `compile_from_config` with what
    Keras recorded, which covers Keras's own arguments only.
    """
    model._compile_config.config.update(values)


def stop_gradient_keeping_mask(x):
    """`ops.stop_gradient(x)` carrying `x`'s Keras mask (`backend.get_keras_mask` / `set_keras_mask`).

    Why: a noisy layer cuts its inputs off from the gradient; a layer inside
    it that reads its input's padding mask (`MultiHeadAttention` after an
    `Embedding(mask_zero=True)`) must see the mask it sees without the cut.
    """
    from keras import ops
    from keras.src.backend.common import masking

    stopped = ops.stop_gradient(x)
    mask = masking.get_keras_mask(x)
    if mask is not None:
        masking.set_keras_mask(stopped, mask)
    return stopped


def update_loss(model, value, sample_weight):
    """Updates the loss that `fit` reports (`_loss_tracker`) with the step's loss.

    Why: a GLR step's loss is the mean over all B x K copies, computed by
    the estimator, not by `compute_loss` on the model's outputs.
    """
    model._loss_tracker.update_state(value, sample_weight=sample_weight)


def track_output_losses(model, y, y_pred, sample_weight):
    """Updates the per-output loss metrics Keras logs for several outputs ("digit_loss", ...) (`_compile_loss`).

    Why: a GLR step computes its loss in the estimator, never through the
    compiled loss, and the compiled loss is where Keras keeps those trackers.
    """
    if getattr(model, "_compile_loss", None) is not None:
        model._compile_loss(y, y_pred, sample_weight)


def symbolic_build(model, data_batch):
    """Builds the optimizer's and the compiled metrics' variables from a batch's shapes (`_symbolic_build`).

    Why: variables created inside the first trace of a `tf.function` make
    Keras trace the step twice; building them first from the data's shapes
    traces it once.
    """
    model._symbolic_build(data_batch=data_batch)


def can_build_symbolically(model):
    """Whether the installed Keras has `symbolic_build`."""
    return hasattr(model, "_symbolic_build")


def has_strategy(model):
    """Whether `model` was created under a distribution strategy's scope (`_distribute_strategy`).

    Why: `model.distribute_strategy` falls back to the default strategy, so
    it cannot tell a model built under a strategy from one built without.
    """
    return model._distribute_strategy is not None


def in_multi_worker_mode(strategy):
    """Whether a `MultiWorkerMirroredStrategy` spans several workers (`extended._in_multi_worker_mode`).

    Why: its reduction of the step's logs needs an axis that a one-worker
    strategy does not; only this private method tells them apart.
    """
    return getattr(strategy.extended, "_in_multi_worker_mode", lambda: False)()


class TrainerHooks:
    """Overrides `keras.Model._maybe_symbolic_build`, forwarding to `build_state_from_batch`.

    Why: Keras builds the state from the mean of the replicas' shards of the
    first batch, which fails when a batch does not divide among the
    replicas, and reads a batch even when the state was built already.
    """

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        return self.build_state_from_batch(iterator, data_batch, super()._maybe_symbolic_build)


class GraphHooks:
    """Overrides `keras.Model._run_through_graph`, forwarding to `run_graph`.

    Why: layer-wise fan-out pads a merge's inputs to one number of copies
    each time a functional graph runs; only this method sees every node's
    outputs as the graph runs.
    """

    def _run_through_graph(self, inputs, operation_fn=lambda op: op, **kwargs):
        def run(fn):
            return super(GraphHooks, self)._run_through_graph(inputs, fn, **kwargs)

        return self.run_graph(operation_fn, run)
