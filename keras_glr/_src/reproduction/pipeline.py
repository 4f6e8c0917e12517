"""The pipeline of a reproduction: train every run, measure every model, write REPORT.md.

A re-run skips finished trainings and resumes interrupted ones; evaluations
are cached per model (out/evaluations/) and the crafted inputs are saved
(out/samples/), so nothing finished is recomputed. A row whose training or
evaluation fails is reported as failed, with the error.
"""

import os
import time

import keras
import tensorflow as tf

from keras_glr import data as data_module
from keras_glr._src import checkpoints
from keras_glr._src import json_files
from keras_glr._src import run_folders
from keras_glr._src import runs
from keras_glr._src.reproduction import protocol
from keras_glr._src.reproduction import report
from keras_glr._src.reproduction import results
from keras_glr._src.run_config import read_config
from keras_glr.robustness import evaluation
from keras_glr.robustness import report as evaluation_report


class _Progress(keras.callbacks.Callback):
    """Advances one overall progress bar by one step per finished epoch."""

    def __init__(self, bar):
        super().__init__()
        self.bar = bar

    def on_epoch_end(self, epoch, logs=None):
        self.bar.add(1)


def _load_test_set(settings):
    """The test inputs every model is measured on (14x14 images, flat for the MLP), as numpy."""
    flatten = settings.suite_spec.flatten
    return data_module.test_arrays(
        settings.dataset, image_size=14, flatten=flatten, examples=settings.examples, data_dir=settings.data_dir
    )


def _train_all(settings, out, say):
    """Trains (or skips / resumes) every run; returns {label: (row, twin_of, run_dir | error)}."""
    root = os.path.join(out, "runs")
    todo = [(None, None, protocol.surrogate_config(settings))] + protocol.row_configs(settings, root)
    total_epochs = sum(config.epochs for _, _, config in todo)
    bar = keras.utils.Progbar(total_epochs, unit_name="epoch")
    trained = {}
    for row, twin_of, config in todo:
        label = config.name()
        summary_path = os.path.join(root, label, "run.json")
        try:
            finished = (
                os.path.exists(summary_path)
                and json_files.read_json(summary_path, run_folders.SUMMARY_FIELDS)["status"] == "finished"
            )
            if finished:
                bar.add(config.epochs)
            else:
                bar.add(checkpoints.epochs_done(os.path.join(root, label)))
                started = os.path.exists(os.path.join(root, label, "config.json"))
                runs.train(config, root=root, resume=started, verbose=0, callbacks=[_Progress(bar)])
            trained[label] = (row, twin_of, os.path.join(root, label))
        except (ValueError, OSError, data_module.DataUnavailableError, tf.errors.OpError) as error:
            trained[label] = (row, twin_of, f"{type(error).__name__}: {error}")
            bar.add(max(0, config.epochs - checkpoints.epochs_done(os.path.join(root, label))))
            say(f"\ntraining {label} failed: {error}")
    return trained


def _cache_key(settings, run_dir, noisy):
    summary = json_files.read_json(os.path.join(run_dir, "run.json"), run_folders.SUMMARY_FIELDS)
    return {
        "finished_at": summary.get("finished_at"),
        "examples": settings.examples,
        "whitebox_examples": settings.whitebox_examples,
        "eps": list(settings.eps),
        "noisy_passes": settings.noisy_passes if noisy else None,
        "certify": None
        if noisy
        else [settings.certify_examples, settings.certify_samples, settings.alpha, list(settings.suite_spec.radii)],
        "plan": protocol.plans(settings).version(),
        "corruptions": list(settings.suite_spec.corruptions),
    }


def _evaluate_one(entry, x, y, settings, surrogate, samples):
    """Transfer attacks and corruptions on all of x; white-box attacks and the checklist on the
    first `whitebox_examples`; certificates (deterministic entries only: the smoothed classifier
    is the same for both predictions) on the first `certify_examples`.

    New transfer and corrupted inputs are added to `samples` as soon as they exist.
    """
    plans = protocol.plans(settings)
    results, crafted = evaluation.evaluate([entry], x, y, plans.transfer, surrogate, samples, progress=False)
    samples.update(crafted)
    n = min(settings.whitebox_examples, len(x))
    transfer = {
        key: value[:n] for key, value in samples.items() if key.startswith("pgd@")
    }  # the checklist's transfer PGD
    for plan in plans.white_box():
        own, _ = evaluation.evaluate([entry], x[:n], y[:n], plan, samples=transfer, progress=False)
        for name in plan.attacks:
            results["attacks"][plans.key(plan, name)] = own["attacks"][name]
        if plan.checklist:
            results["checklist"] = own["checklist"]
    results["whitebox_examples"] = n
    if not isinstance(entry.model, evaluation.NoisyPrediction):
        m = min(settings.certify_examples, len(x))
        results["certified"] = evaluation.evaluate([entry], x[:m], y[:m], plans.certify, progress=False)[0]["certified"]
    return results


def _evaluate_all(settings, out, trained, x, y, say):
    """{label: results or error string}, cached in out/evaluations/."""
    cache_dir = os.path.join(out, "evaluations")
    samples_dir = os.path.join(out, "samples")
    os.makedirs(cache_dir, exist_ok=True)
    samples = (
        evaluation_report.load_samples(samples_dir, x, y)
        if os.path.exists(os.path.join(samples_dir, "samples.npz"))
        else {}
    )
    known = set(samples)
    surrogate_label = protocol.surrogate_config(settings).name()
    surrogate_dir = trained[surrogate_label][2]
    if not os.path.isdir(str(surrogate_dir)):
        raise RuntimeError(
            f"The attack surrogate could not be trained ({surrogate_dir}); no transfer attacks are possible."
        )
    surrogate = evaluation.load_entry(surrogate_dir)
    work = []
    for label, (row, twin_of, run_dir) in trained.items():
        if row is None:
            continue
        work.append((label, run_dir, False))
        if row.trains_with_noise:
            work.append((label + "_noisy", run_dir, True))
    evaluated = {}
    bar = keras.utils.Progbar(len(work), unit_name="model")
    for label, run_dir, noisy in work:
        if not os.path.isdir(str(run_dir)):
            evaluated[label] = f"not trained ({run_dir})"
            bar.add(1)
            continue
        path = os.path.join(cache_dir, label + ".json")
        key = _cache_key(settings, run_dir, noisy)
        if os.path.exists(path):
            try:
                cached = json_files.read_json(path, {"key": dict, "results": dict})
            except json_files.DamagedFileError:
                cached = {}  # a damaged cache entry is measured again
            if cached.get("key") == key:
                evaluated[label] = cached["results"]
                bar.add(1)
                continue
        try:
            entry = evaluation.load_entry(run_dir)
            if noisy:
                entry = evaluation.ModelEntry(
                    label,
                    evaluation.group_of(label),
                    evaluation.NoisyPrediction(entry.model, settings.noisy_passes),
                    entry.config,
                    run_dir,
                )
            try:
                evaluated[label] = _evaluate_one(entry, x, y, settings, surrogate, samples)
            finally:
                if set(samples) - known:
                    evaluation_report.save_samples(samples, x, y, samples_dir)
                    known = set(samples)
            json_files.write_json(path, {"key": key, "results": evaluated[label]})
        except (ValueError, OSError, RuntimeError, tf.errors.OpError) as error:
            evaluated[label] = f"{type(error).__name__}: {error}"
            say(f"\nevaluating {label} failed: {error}")
        bar.add(1)
    return evaluated, samples, surrogate


def reproduce(settings, out="reproduction", command=None, say=print):
    """Trains, evaluates and writes out/REPORT.md; returns the report's path.

    Raises run_folders.RunError (unwritable `out`), ValueError (bad settings) or
    DataUnavailableError (unknown or missing dataset) before any training.
    """
    started = time.time()
    run_folders.ensure_writable(out, what="the output folder ", hint="Choose a writable --out.")
    x, y = _load_test_set(settings)  # fails early for an unknown dataset
    json_files.write_json(os.path.join(out, "settings.json"), settings.to_json())
    say(
        f"Training {len(protocol.row_configs(settings)) + 1} runs into {os.path.join(out, 'runs')} (finished runs are "
        "skipped)"
    )
    trained = _train_all(settings, out, say)
    say(f"Evaluating on {len(x)} test examples (cached in {os.path.join(out, 'evaluations')})")
    evaluated, samples, surrogate = _evaluate_all(settings, out, trained, x, y, say)
    evaluations = results.Evaluations(evaluated)
    merged = evaluations.merged()
    configs = {}
    for label, (_, _, run_dir) in trained.items():
        if os.path.isdir(str(run_dir)) and os.path.exists(os.path.join(run_dir, "config.json")):
            read_config(run_dir)  # a damaged config.json is named, not a trace
            configs[label] = json_files.read_json(os.path.join(run_dir, "config.json"))
            configs[label + "_noisy"] = configs[label]
    if merged is not None:
        merged["surrogate"] = surrogate.label
        merged["surrogate_clean"] = evaluation.accuracy(surrogate.model, x, y)
        evaluation_report.write(
            merged,
            samples,
            x,
            y,
            configs,
            os.path.join(out, "evaluation"),
            first_model_predict=lambda t: evaluation.predict_scores(surrogate.model, t),
        )
    text = report.render(settings, trained, evaluations, merged, configs, len(x), time.time() - started, command)
    path = os.path.join(out, "REPORT.md")
    with open(path, "w") as f:
        f.write(text)
    return path
