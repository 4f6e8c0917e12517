"""Several outputs: each copy's loss is the weighted sum of its outputs' losses, as Keras weighs them.

    model.compile(optimizer, loss={"digit": ce, "parity": "binary_crossentropy"},
                  loss_weights={"digit": 1.0, "parity": 0.5}, copies=100)

L_n = sum_o w_o * loss_o(y_o, y_pred_o)[n] for copy n: the estimators see
one per-example loss, so every estimator and option applies unchanged. The
loss and its weights may be given as Keras takes them: one loss for every
output, a list in the order of `model.outputs`, or a dict by output name
(an output without a loss is not trained for); weights likewise (1 where
none is given).
"""


def names(model):
    """The model's output names, in the order of `model.outputs` ([] when it has none yet)."""
    return list(getattr(model, "output_names", None) or [])


def by_output(structure, output_names, what, default=None):
    """`structure` (one value, a list in output order, or a dict by name) as one value per output.

    Raises ValueError saying what was received and what the outputs are.
    """
    count = len(output_names)
    if isinstance(structure, dict):
        unknown = sorted(set(structure) - set(output_names))
        if unknown:
            raise ValueError(
                f"Invalid `{what}`: it names {unknown}, which are not outputs of this model. Its outputs are "
                f"{output_names}; give a dict keyed by those names, or a list of {count} in that order."
            )
        return [structure.get(name, default) for name in output_names]
    if isinstance(structure, (list, tuple)):
        if len(structure) != count:
            raise ValueError(
                f"Invalid `{what}`: a list of {len(structure)} for a model with {count} output(s) {output_names}. "
                f"Give one entry per output, in that order (None for an output without a loss), or a dict keyed by "
                "output name."
            )
        return list(structure)
    return [structure] * count


def check(model, loss, loss_weights):
    """Raises ValueError, before anything changes, for a loss or weights that do not fit the model's outputs."""
    output_names = names(model)
    if len(output_names) <= 1:
        if isinstance(loss, (list, tuple, dict)) and len(loss) != 1:
            raise ValueError(
                f"Invalid `loss`: {len(loss)} losses for a model with one output. Give one loss, e.g. "
                "keras.losses.SparseCategoricalCrossentropy(from_logits=True)."
            )
        _check_weights(loss_weights, entries(loss_weights))
        return
    losses = by_output(loss, output_names, "loss")
    if all(entry is None for entry in losses):
        raise ValueError(f"Invalid `loss`: no output of {output_names} has a loss. Give at least one.")
    _check_weights(loss_weights, by_output(loss_weights, output_names, "loss_weights", 1.0))


def entries(structure):
    """The values of a dict, the entries of a list, or [structure]."""
    if isinstance(structure, dict):
        return list(structure.values())
    return list(structure) if isinstance(structure, (list, tuple)) else [structure]


def _check_weights(loss_weights, weights):
    bad = [w for w in weights if w is not None and (isinstance(w, bool) or not isinstance(w, (int, float)))]
    if bad:
        metrics = (
            " Pass metrics by keyword: compile(optimizer, loss, metrics=[...])."
            if any(isinstance(w, str) for w in bad)
            else ""
        )
        raise ValueError(
            f"Invalid `loss_weights`: each weight must be a number. Received: loss_weights={loss_weights!r}.{metrics}"
        )


def for_keras(model, loss, loss_weights):
    """(loss, loss_weights) with an entry for every output, as Keras's compiled loss requires.

    A dict of losses gets None for the outputs it leaves out, one loss for
    several outputs becomes a list, and the weights take the losses'
    structure (1 where none is given). Unchanged for one output.
    """
    output_names = names(model)
    if len(output_names) <= 1:
        return loss, loss_weights
    losses = by_output(loss, output_names, "loss")
    weights = [1.0 if w is None else w for w in by_output(loss_weights, output_names, "loss_weights", 1.0)]
    if isinstance(loss, dict):
        return dict(zip(output_names, losses)), dict(zip(output_names, weights))
    return losses, weights


def weighted_sum(per_output, output_names):
    """fn(y_true, y_pred) -> sum_o w_o * fn_o(y_true_o, y_pred_o), shape (N,).

    per_output: one (fn_o or None, w_o) per output, in output order; fn_o
    maps (y_true_o, y_pred_o) to per-example values, shape (N,). y_true and
    y_pred: lists in output order, or dicts by output name.
    """

    def loss(y_true, y_pred):
        truths = _per_output(y_true, output_names, "labels")
        predictions = _per_output(y_pred, output_names, "outputs")
        total = None
        for (fn, weight), truth, prediction in zip(per_output, truths, predictions):
            if fn is None:
                continue
            values = fn(truth, prediction) * (1.0 if weight is None else float(weight))
            total = values if total is None else total + values
        return total

    return loss


def _per_output(structure, output_names, what):
    if len(output_names) == 1 and not isinstance(structure, (list, tuple, dict)):
        return [structure]
    if isinstance(structure, dict):
        missing = [name for name in output_names if name not in structure]
        if missing:
            raise ValueError(
                f"The {what} have no entry for output(s) {missing}: give a dict with one entry per output "
                f"{output_names}, or a list in that order."
            )
        return [structure[name] for name in output_names]
    if isinstance(structure, (list, tuple)) and len(structure) == len(output_names):
        return list(structure)
    received = f"a list of {len(structure)}" if isinstance(structure, (list, tuple)) else "one array"
    raise ValueError(
        f"The model has {len(output_names)} outputs {output_names}, and the {what} are {received}. Give one entry "
        "per output: a list in that order, or a dict keyed by output name."
    )


def is_several(model):
    """Whether `model` has more than one output."""
    return len(names(model)) > 1
