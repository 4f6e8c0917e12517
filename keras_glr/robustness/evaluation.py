"""Measure clean, adversarial and corrupted accuracy of several models on the same inputs.

Modes for attacks:
    transfer  craft once on a surrogate model (the paper: a BP-trained MLP with
              two hidden layers) and measure every model on the same samples;
    whitebox  craft on each model itself, with BPDA (straight-through step and
              sign units) and, when its prediction is noisy, EOT.
"""

import dataclasses
import os
import re

import keras
import numpy as np
import tensorflow as tf

from keras_glr.robustness import attacks as attack_module
from keras_glr.robustness import certification
from keras_glr.robustness import checklist as checklist_module
from keras_glr.robustness import corruptions as corruption_module
from keras_glr.robustness.attacks import surrogate_gradients


@dataclasses.dataclass
class ModelEntry:
    """A model to evaluate. `group` is its label without the seed, so that
    runs that differ only in their seed share a table row."""

    label: str
    group: str
    model: object
    config: dict = None
    path: str = ""


def group_of(label):
    """A run's label without its seed: runs that differ only in the seed share a row."""
    return re.sub(r"_seed\d+", "", label)


def load_entry(path):
    """Loads a run directory (saved_models/<run>) or a .keras file."""
    from keras_glr._src import checkpoints
    from keras_glr._src import json_files
    from keras_glr._src import run_config

    model_path = checkpoints.model_file(path)
    config_path = os.path.join(path, "config.json")
    config = None
    if os.path.isdir(path) and os.path.exists(config_path):
        run_config.read_config(path)  # raises DamagedFileError naming the file when it is damaged
        config = json_files.read_json(config_path)
    label = (
        os.path.basename(os.path.normpath(path)) if os.path.isdir(path) else os.path.basename(path)[: -len(".keras")]
    )
    model = checkpoints.load_model(model_path)
    check_classifier(model, label)
    return ModelEntry(label, group_of(label), model, config, path)


class NoisyPrediction:
    """A GLR model's noisy prediction, as served by the SavedModel's `serve_noisy`.

    Calling it returns class probabilities averaged over `passes` noisy
    forward passes, shape (B, C). It has the model's `inputs` and
    `outputs`, so it can stand wherever the evaluation takes a model.
    """

    def __init__(self, model, passes=32):
        if not hasattr(model, "noisy_forward"):
            raise ValueError(
                f"Noisy prediction needs a GLR model (with noisy layers); received {type(model).__name__}."
            )
        self.model = model
        self.passes = passes
        self.inputs = model.inputs
        self.outputs = model.outputs

    def __call__(self, x, training=False):
        outputs = self.model.noisy_forward(tf.convert_to_tensor(x), self.passes)
        return tf.reduce_mean(tf.nn.softmax(outputs, axis=-1), axis=1)


def check_classifier(model, label="model"):
    """Raises ValueError unless `model` maps one input to (batch, C >= 2) scores."""
    outputs = getattr(model, "outputs", None)
    if not outputs or len(outputs) != 1 or len(outputs[0].shape) != 2 or (outputs[0].shape[-1] or 0) < 2:
        shape = [tuple(o.shape) for o in outputs] if outputs else "unknown"
        raise ValueError(
            f"{label} is not a classifier: expected one output of shape (batch, classes >= 2), "
            f"found output shape {shape}."
        )
    if len(model.inputs) != 1:
        raise ValueError(f"{label} has {len(model.inputs)} inputs; the evaluation needs models with one input.")


def input_shape(model):
    """The shape of one input of `model`, without the batch dimension."""
    return tuple(model.inputs[0].shape[1:])


def logits_fn(model):
    """x -> logits. Models ending in a softmax are turned back into logits."""
    if isinstance(model, NoisyPrediction):
        return lambda x: tf.math.log(tf.clip_by_value(model(x), 1e-12, 1.0))
    last = model.layers[-1]
    if getattr(last, "activation", None) is keras.activations.softmax:
        return lambda x: tf.math.log(tf.clip_by_value(model(x, training=False), 1e-12, 1.0))
    return lambda x: model(x, training=False)


def predict_scores(model, x, batch_size=500):
    """Model outputs for `x`, in batches (no retracing for new input arrays)."""
    return np.concatenate(
        [np.asarray(model(x[i : i + batch_size], training=False)) for i in range(0, len(x), batch_size)]
    )


def accuracy(model, x, y, batch_size=500):
    """The share of `x` whose arg-max output equals the label `y`, from batches of `batch_size`."""
    return float(np.mean(predict_scores(model, x, batch_size).argmax(axis=1) == y))


RADII = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3)  # input-space radii of the certified-accuracy columns


@dataclasses.dataclass
class Plan:
    attacks: tuple = ("fgsm", "lbfgs")
    eps: tuple = (0.05, 0.1, 0.2)
    corruptions: tuple = corruption_module.PAPER_NAMES
    mode: str = "auto"  # "auto": transfer with a surrogate, else whitebox
    seed: int = 0
    eot_samples: int = 16
    checklist: bool = False  # Carlini et al.'s checks of the white-box attack (`checklist`)
    certify: bool = False  # randomized-smoothing certificates (`certification.certify`)
    certify_samples: int = 10_000
    alpha: float = 0.001
    radii: tuple = RADII

    def resolved_mode(self, surrogate):
        if self.mode == "auto":
            return "transfer" if surrogate is not None else "whitebox"
        if self.mode == "transfer" and surrogate is None:
            raise ValueError("Transfer attacks need a surrogate model: pass --surrogate MODEL, or use --mode whitebox.")
        if self.mode not in ("transfer", "whitebox"):
            raise ValueError(f"Invalid mode {self.mode!r}: expected auto, transfer or whitebox.")
        return self.mode


def attack_model_fn(model, attack, eot_samples=16, slope=None):
    """What a white-box `attack` sees of `model`.

    Query-only attacks (SPSA) see the prediction itself. Gradient attacks on
    GLR models see BPDA (straight-through step and sign units, the surrogate
    of `slope`) and, when the prediction is noisy, EOT: logits averaged over
    `eot_samples` noisy passes.
    """
    if attack.queries_only:
        return tf.function(logits_fn(model), reduce_retracing=True)  # thousands of queries: in a graph, ~5x faster
    if isinstance(model, NoisyPrediction):
        return surrogate_gradients.eot_model_fn(model.model, eot_samples, slope)
    if isinstance(model, keras.Model) and hasattr(model, "noisy_forward"):
        if surrogate_gradients.has_noisy_prediction(model):
            return surrogate_gradients.eot_model_fn(model, eot_samples, slope)
        return surrogate_gradients.bpda_model_fn(model, slope)
    return logits_fn(model)


def attack_model_fns(model, attack, eot_samples=16):
    """Every view a white-box `attack` takes of `model`: one per BPDA slope for step and sign units, else one."""
    network = model.model if isinstance(model, NoisyPrediction) else model
    several = not attack.queries_only and hasattr(network, "noisy_forward")
    several = several and surrogate_gradients.has_straight_through_units(network)
    slopes = surrogate_gradients.SLOPES if several else (None,)
    return [attack_model_fn(model, attack, eot_samples, slope) for slope in slopes]


def correct(model, x, y, batch_size=500):
    """Per example, whether `model`'s arg-max output equals the label, shape (N,)."""
    return predict_scores(model, x, batch_size).argmax(axis=1) == np.asarray(y)


def worst_case(model, candidates, x, y):
    """Per example, the first of `candidates` (arrays shaped like x) that `model` misclassifies, else x itself.

    The accuracy on the result is the accuracy on the examples that survive
    every candidate (AutoAttack's rule): never above any one candidate's.
    """
    result = np.array(x, copy=True)
    left = correct(model, result, y)
    for candidate in candidates:
        if not left.any():
            break
        broken = left & ~correct(model, candidate, y)
        result[broken] = np.asarray(candidate)[broken]
        left &= ~broken
    return result


def evaluate(entries, x, y, plan, surrogate=None, samples=None, progress=True):
    """Runs the plan; returns (results, samples).

    Args:
        entries: list of `ModelEntry`, all with the same input shape.
        x: test inputs (model input shape).
        y: their integer labels.
        plan: a `Plan`.
        surrogate: optional `ModelEntry` to craft transfer attacks on.
        samples: optional dict of previously saved inputs to reuse, keyed as
            the returned samples are ("fgsm@0.1", "contrast@3", ...).

    Returns:
        results: JSON-ready dict (see `report.write`).
        samples: dict key -> crafted or corrupted inputs (for saving, plots).
    """
    shape = input_shape(entries[0].model)
    for entry in entries[1:] + ([surrogate] if surrogate else []):
        if input_shape(entry.model) != shape:
            raise ValueError(
                f"Input shapes differ: {entries[0].label} takes {shape}, {entry.label} takes "
                f"{input_shape(entry.model)}. Evaluate models built for the same inputs."
            )
    mode = plan.resolved_mode(surrogate)
    samples = dict(samples or {})
    labels = [e.label for e in entries]
    results = {
        "models": labels,
        "groups": {e.label: e.group for e in entries},
        "examples": int(len(x)),
        "mode": mode,
        "surrogate": surrogate.label if surrogate else None,
        "seed": plan.seed,
        "clean": {e.label: accuracy(e.model, x, y) for e in entries},
        "attacks": {},
        "corruptions": {},
    }
    if surrogate is not None:
        results["surrogate_clean"] = accuracy(surrogate.model, x, y)
    work = []
    for name in plan.attacks:
        attack = attack_module.get(name)
        for eps in plan.eps if attack.uses_eps else (None,):
            work.append(("attack", name, eps))
    for name in plan.corruptions:
        for severity in corruption_module.SEVERITIES:
            work.append(("corruption", name, severity))
    bar = keras.utils.Progbar(len(work), unit_name="task") if progress and work else None
    xt, yt = tf.constant(x), tf.constant(y)
    for kind, name, param in work:
        if kind == "attack":
            key = f"{name}@{'min' if param is None else param}"
            per_model = {}
            attack = attack_module.get(name)
            if mode == "transfer":
                if key not in samples and not attack.members:
                    tf.random.set_seed(plan.seed)
                    samples[key] = np.asarray(attack.run(logits_fn(surrogate.model), xt, yt, param))
                for entry in entries:
                    crafted = samples.get(key)
                    if attack.members:
                        members = [samples[f"{m}@{param}"] for m in attack.members]
                        crafted = worst_case(entry.model, members, x, y)
                    per_model[entry.label] = accuracy(entry.model, crafted, y)
            else:
                for entry in entries:
                    own = f"{key}:{entry.label}"
                    if own not in samples:
                        samples[own] = _white_box(entry.model, attack, x, y, param, plan, samples, entry.label)
                    per_model[entry.label] = accuracy(entry.model, samples[own], y)
            results["attacks"].setdefault(name, {})["min" if param is None else str(param)] = per_model
        else:
            key = f"{name}@{param}"
            if key not in samples:
                images = x.reshape((-1,) + corruption_module.image_shape_for(shape))
                samples[key] = corruption_module.get(name)(images, param, seed=plan.seed).reshape(x.shape)
            for entry in entries:
                results["corruptions"].setdefault(name, {}).setdefault(entry.label, []).append(
                    accuracy(entry.model, samples[key], y)
                )
        if bar:
            bar.add(1)
    if results["corruptions"]:
        results["corruption_means"] = {
            name: {label: corruption_module.mean_over_severities(v) for label, v in by_model.items()}
            for name, by_model in results["corruptions"].items()
        }
        results["corruption_overall"] = {
            label: float(np.mean([results["corruption_means"][n][label] for n in results["corruption_means"]]))
            for label in labels
        }
    if plan.checklist:
        transfer = samples.get(f"pgd@{plan.eps[0]}")
        results["checklist"] = {e.label: run_checklist(e, x, y, plan, transfer) for e in entries}
    if plan.certify:
        results["certified"] = {e.label: certify_entry(e, x, y, plan, progress) for e in entries}
    results["plan"] = {"attacks": list(plan.attacks), "eps": list(plan.eps), "corruptions": list(plan.corruptions)}
    return results, samples


def _white_box(model, attack, x, y, eps, plan, samples, label):
    """`attack`'s inputs against `model` itself: the worst case over its BPDA views, or over an ensemble's members."""
    if attack.members:
        return worst_case(model, [samples[f"{m}@{eps}:{label}"] for m in attack.members], x, y)
    crafted = []
    for view in attack_model_fns(model, attack, plan.eot_samples):
        tf.random.set_seed(plan.seed)
        crafted.append(np.asarray(attack.run(view, tf.constant(x), tf.constant(y), eps)))
    return crafted[0] if len(crafted) == 1 else worst_case(model, crafted, x, y)


def run_checklist(entry, x, y, plan, transfer=None):
    """Carlini et al.'s checks of white-box PGD on `entry` (see `checklist`), at the plan's first eps."""
    attack_fn = attack_model_fn(entry.model, attack_module.get("pgd"), plan.eot_samples)
    correct = lambda t: predict_scores(entry.model, t).argmax(axis=1) == y  # noqa: E731
    classes = int(entry.model.outputs[0].shape[-1])
    settings = checklist_module.Settings(eps=plan.eps[0])
    return checklist_module.run(attack_fn, correct, x, y, classes, transfer, settings, seed=plan.seed)


def certify_entry(entry, x, y, plan, progress=False):
    """Certified accuracy of `entry`'s smoothed classifier at the plan's radii (JSON-ready), or {"error": why}."""
    model = entry.model.model if isinstance(entry.model, NoisyPrediction) else entry.model
    try:
        certificate = certification.certify(
            model, x, num_samples=plan.certify_samples, alpha=plan.alpha, seed=plan.seed, progress=progress
        )
    except ValueError as error:
        return {"error": str(error)}
    return {
        "norm": certificate.norm,
        "radii": list(plan.radii),
        "accuracy": [float(a) for a in certificate.accuracy(y, plan.radii)],
        "abstained": float(np.mean(certificate.prediction == certification.ABSTAIN)),
        "median_radius": float(np.median(certificate.radius[certificate.prediction == y]))
        if np.any(certificate.prediction == y)
        else 0.0,
        "operator_norm": certificate.operator_norm,
        "samples": plan.certify_samples,
        "alpha": plan.alpha,
        "examples": int(len(x)),
    }
