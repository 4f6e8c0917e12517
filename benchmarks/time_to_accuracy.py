"""Time to accuracy: each GLR network against its fair control, on mnist5k (items 2 to 2d of `speed.py`).

python benchmarks/speed.py --only-mlp   # or --only-cnn, --only-resnet, --only-time
"""

import math
import statistics
import time

import keras
from harness import CE
from harness import network

from keras_glr import data
from keras_glr.options import INJECTIONS

LEARNING_RATES = (0.01, 0.02, 0.03, 0.05)
GLR_COPIES = 100
NOISE_SCALES = {"sigmoid": (0.5, 1.0), "step": (1.0,)}


def _summary(setting, per_seed, target):
    """Medians over seeds of the (seconds, epochs) to `target`; per_seed: [(elapsed s, test accuracy) per epoch]."""
    reached = [next(((s, e) for e, (s, a) in enumerate(points, 1) if a >= target), None) for points in per_seed]
    times = [r or (math.inf, math.inf) for r in reached]
    hits = [r for r in reached if r]
    later = [b - a for points in per_seed for (a, _), (b, _) in zip(points, points[1:])]
    return {
        "seconds": statistics.median(t for t, _ in times),
        "epochs": statistics.median(e for _, e in times),
        "first_epoch_s": statistics.median(points[0][0] for points in per_seed),
        "later_epoch_s": statistics.median(later) if later else None,
        "range": [min(s for s, _ in hits), max(s for s, _ in hits)] if hits else None,
        "reached": f"{len(hits)}/{len(per_seed)}",
        "setting": setting,
        "best_accuracy": max(a for points in per_seed for _, a in points),
    }


def _epochs_until(model, splits, max_epochs, stop_at=None):
    """[(elapsed training seconds, test accuracy)] after each epoch, stopping once `stop_at` is reached."""
    elapsed, points = 0.0, []
    for _ in range(max_epochs):
        start = time.perf_counter()
        model.fit(splits.train, epochs=1, verbose=0)
        elapsed += time.perf_counter() - start
        points.append((elapsed, model.evaluate(splits.test, verbose=0)[1]))
        if stop_at is not None and points[-1][1] >= stop_at:
            break
    return points


def arch_time_to_accuracy(
    arch, max_epochs, seeds, image_size=14, margin=0.03, control="bp", control_options=None, train_through=False
):
    """BP (or `control`) against GLR with `glr-train --arch ARCH`'s defaults, to the control's accuracy minus `margin`.

    Each trains as `runs.train` builds it (`RunConfig.for_arch(arch=arch)`,
    GLR; `estimator=control` and `control_options` for the control) for every
    seed; the control trains `max_epochs`, GLR stops at the target unless
    `train_through` (then it trains `max_epochs` too, and "final_accuracy"
    is comparable). Returns {name: `_summary` + "target", "final_accuracy"
    (the mean over seeds after the last epoch trained), "final_per_seed"}.
    """
    from keras_glr import runs

    def curve(estimator, seed, stop_at=None, **options):
        config = runs.RunConfig.for_arch(
            arch=arch, estimator=estimator, seed=seed, epochs=max_epochs, image_size=image_size, **options
        )
        keras.utils.set_random_seed(seed)
        splits = data.load("mnist5k", batch_size=config.batch_size, image_size=image_size, seed=seed)
        model = runs.build_model(config, splits.info, splits.steps_per_epoch)
        return _epochs_until(model, splits, max_epochs, stop_at)

    def finals(per_seed):
        return {
            "final_accuracy": statistics.mean(points[-1][1] for points in per_seed),
            "final_per_seed": [points[-1][1] for points in per_seed],
            "best_per_seed": [max(a for _, a in points) for points in per_seed],
        }

    options = dict(control_options or {})
    controls = [curve(control, seed, **options) for seed in seeds]
    target = statistics.mean(points[-1][1] for points in controls) - margin
    glr = [curve("glr", seed, stop_at=None if train_through else target) for seed in seeds]
    setting = dict(runs.ARCH_DEFAULTS[arch], image_size=image_size)
    name = f"{control} {arch}"
    return {
        name: {
            "target": target,
            **_summary({"estimator": control, "image_size": image_size, **options}, controls, target),
            **finals(controls),
        },
        f"glr {arch}": {"target": target, "control": name, **_summary(setting, glr, target), **finals(glr)},
    }


def cnn_time_to_accuracy(max_epochs, seeds):
    """The small CNN at 14 x 14, to BP's accuracy minus three points (`arch_time_to_accuracy`)."""
    return arch_time_to_accuracy("cnn", max_epochs, seeds)


def resnet_time_to_accuracy(max_epochs, seeds):
    """The residual CNN at 28 x 28, to BP's accuracy minus two points; both train all epochs."""
    return arch_time_to_accuracy("resnet", max_epochs, seeds, image_size=28, margin=0.02, train_through=True)


def rnn_time_to_accuracy(max_epochs, seeds):
    """The rnn (rows as time steps) against BPTT on the same network, both 12 epochs, to BPTT's accuracy minus three
    points."""
    return arch_time_to_accuracy("rnn", max_epochs, seeds, train_through=True)


def snn_time_to_accuracy(max_epochs, seeds):
    """The snn against its surrogate-gradient twin (bp-ste: spikes pass the gradient straight through, the same
    noise sigma, one copy per example), both 12 epochs, to the twin's accuracy minus three points."""
    return arch_time_to_accuracy(
        "snn", max_epochs, seeds, control="bp-ste", control_options={"sigma": 0.3, "copies": 1}, train_through=True
    )


def time_to_accuracy(max_epochs, seeds):
    """Per model: the fastest median (seconds, epochs) to its control's best accuracy minus one point.

    Every model trains on mnist5k (Adam, batch 32) with each seed (model,
    shuffling and noise) in `seeds`, at each learning rate in LEARNING_RATES,
    GLR models (K = GLR_COPIES) also at each noise scale sigma in
    NOISE_SCALES and each injection in INJECTIONS; test accuracy is measured
    after each epoch, outside the timing (tracing is inside, for every model).
    The controls train `max_epochs` epochs: BP on sigmoid units, the control
    of GLR sigmoid, and bp-ste on step units (straight-through, the same
    noise sigma = 1 and K = GLR_COPIES copies), the fair twin of GLR step
    (`keras_glr._src.twins`); a control's target is its best final accuracy (mean
    over seeds, at its best learning rate) minus 0.01. GLR stops at its
    target or after `max_epochs`; GLR step is also timed to BP sigmoid's
    target, for the record. A setting's time and epochs are the medians over
    seeds (a seed that misses the target counts as infinitely slow), so it
    counts when most seeds reach the target; each model reports its fastest
    setting. Returns {name: {"target", "control" (the name of the model it is
    compared with, GLR rows only), "seconds", "epochs", "range" (fastest and
    slowest seed that reached), "first_epoch_s" (median seconds of the first
    epoch, tracing included), "later_epoch_s" (median seconds of the epochs
    after it), "reached" (seeds that reached, of len(seeds)), "setting"
    ({"learning_rate", and for noisy models "sigma", "copies", "injection"}),
    "best_accuracy" (highest test accuracy seen)}}.
    """

    def curve(activation, setting, seed, stop_at=None):
        keras.utils.set_random_seed(seed)
        splits = data.load("mnist5k", batch_size=32, image_size=14, flatten=True, seed=seed)
        model = network(activation, setting.get("sigma", 1.0))
        options = {key: setting[key] for key in ("estimator", "copies", "injection") if key in setting}
        if "copies" not in setting:
            options.update(copies=1, baseline="none")
        model.compile(keras.optimizers.Adam(setting["learning_rate"]), CE, metrics=["accuracy"], **options)
        return _epochs_until(model, splits, max_epochs, stop_at)

    def grid(activation, settings, stop_at=None):
        return [(setting, [curve(activation, setting, seed, stop_at) for seed in seeds]) for setting in settings]

    final = lambda per_seed: statistics.mean(points[-1][1] for points in per_seed)  # noqa: E731
    controls = {
        "bp sigmoid": ("sigmoid", {"estimator": "bp"}),
        "bp-ste step": ("step", {"estimator": "bp-ste", "sigma": 1.0, "copies": GLR_COPIES}),
    }
    control_runs = {
        name: grid(activation, [{**fixed, "learning_rate": lr} for lr in LEARNING_RATES])
        for name, (activation, fixed) in controls.items()
    }
    targets = {
        name: max(final(per_seed) for _, per_seed in model_runs) - 0.01 for name, model_runs in control_runs.items()
    }
    glr_settings = {
        activation: [
            {"learning_rate": lr, "sigma": sigma, "copies": GLR_COPIES, "injection": injection}
            for injection in INJECTIONS
            for sigma in NOISE_SCALES[activation]
            for lr in LEARNING_RATES
        ]
        for activation in ("step", "sigmoid")
    }
    step_runs = grid("step", glr_settings["step"], stop_at=max(targets.values()))
    sigmoid_runs = grid("sigmoid", glr_settings["sigmoid"], stop_at=targets["bp sigmoid"])
    compared = {  # name: (runs, control)
        "bp sigmoid": (control_runs["bp sigmoid"], None),
        "glr sigmoid": (sigmoid_runs, "bp sigmoid"),
        "bp-ste step": (control_runs["bp-ste step"], None),
        "glr step": (step_runs, "bp-ste step"),
        "glr step, to bp sigmoid's target": (step_runs, "bp sigmoid"),
    }
    results = {}
    for name, (model_runs, control) in compared.items():
        target = targets[control or name]
        summaries = [_summary(setting, per_seed, target) for setting, per_seed in model_runs]
        best = min(summaries, key=lambda r: (r["seconds"], -r["best_accuracy"]))
        best["best_accuracy"] = max(r["best_accuracy"] for r in summaries)
        results[name] = {"target": target, **best, **({"control": control} if control else {})}
    return results


def transformer_time_to_accuracy(max_epochs, seeds):
    """The transformer (rows as tokens) against BP on the same network, both `max_epochs` epochs, to BP's accuracy
    minus three points."""
    return arch_time_to_accuracy("transformer", max_epochs, seeds, train_through=True)
