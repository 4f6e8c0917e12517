"""GLR speed and scale, measured side by side in one run; prints one table.

    python benchmarks/speed.py            # everything (about 50 minutes on 2 cores)
    python benchmarks/speed.py --quick    # fewer repeats, smaller time-to-accuracy
    python benchmarks/speed.py --only-mlp # item 2 alone: the MLP rows against BP and bp-ste (30 minutes)
    python benchmarks/speed.py --only-cnn # item 2b alone (about 3 minutes)
    python benchmarks/speed.py --only-resnet  # item 2c alone (about 12 minutes)
    python benchmarks/speed.py --only-time    # item 2d alone: the rnn and the snn

1. Train-step time at the paper's configuration (196-20-10, K = 10000,
   batch 25) and at K = 100, batch 32; beside it the time to draw the same
   noise alone (the floor: the library's sampler, and for reference
   TensorFlow's own normal op) and one BP step on the same network; ratios
   (GLR/noise: the median and quartiles of the per-round ratios).
2. Time to accuracy on mnist5k, each GLR network against its fair control:
   GLR sigmoid against BP sigmoid, GLR step against its bp-ste twin
   (straight-through step units with the same noise; backprop has no
   gradient through steps), each to its control's best accuracy minus one
   point (GLR step also to BP sigmoid's, for the record): medians over 5 seeds,
   each model at its fastest Adam learning rate of 0.01, 0.02, 0.03, 0.05,
   GLR (K = 100) with sigmoid units also at its fastest noise scale sigma of
   0.5, 1.0 (step units: 1.0), and GLR at its faster injection, "all" or
   "layerwise": each GLR row is GLR's best configuration of that grid.
2b. Time to accuracy of the small CNN: BP against GLR with `glr-train --arch
   cnn`'s defaults (`run_config.ARCH_DEFAULTS`), to BP's mean final accuracy
   after 12 epochs minus three points: medians over 3 seeds.
2c. The same for the residual CNN (`glr-train --arch resnet --image-size 28`)
   at 28 x 28, to BP's accuracy minus two points; both train all 12 epochs,
   and each seed's final and best test accuracy are printed.
2d. Networks in time (`glr-train --arch rnn` and `--arch snn`, their
   defaults), 12 epochs each on 3 seeds: the rnn against BPTT on the same
   network (`--estimator bp`), the snn against its surrogate-gradient twin
   (`--estimator bp-ste`, the same noise, one copy per example); the time to
   the control's accuracy minus three points, and every model's test
   accuracy after the last epoch.
3. Peak resident memory of GLR steps at K = 10000, batch 128 (one process
   each; with and without `copies_per_chunk`; the peak is reset after
   TensorFlow has loaded and the step is traced).
4. Steps per second under MirroredStrategy with 2 logical CPU devices against 1
   (both models in one process, epochs alternating; medians).

Targets: step <= 1.25 x noise floor at the paper's configuration; peak memory
< 2 GB; GLR within 2 x its control's wall time to the same accuracy; the CNN by GLR
within 5 x BP's wall time to BP's accuracy minus three points; the resnet
by GLR at least 0.96 within 12 epochs, and within 6 x BP's wall time to BP's
accuracy minus two points; the rnn within 3 points of BPTT and the snn at least
as accurate as its twin and 0.90, each within 8 x its control's wall time to
the control's accuracy minus three points.
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_glr import architectures  # noqa: E402
from keras_glr import data  # noqa: E402
from keras_glr.noise import Gaussian  # noqa: E402
from keras_glr.options import INJECTIONS  # noqa: E402
from keras_glr.streams import stream_key  # noqa: E402

CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def network(activation="step", sigma=2.0):
    """The paper's 196-20-10 network."""
    return architectures.mlp((196,), 10, hidden=(20,), activation=activation, noise=Gaussian(sigma))


def interleaved_times(functions, repeats, warmup=2):
    """Seconds of each call of each function, one call of each per round.

    The calls are interleaved, so every round sees the same machine load and
    the per-round ratios are less noisy than ratios of separate runs.
    """
    for fn in functions.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, fn in functions.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def quartiles_of_ratio(numerators, denominators):
    """(first quartile, median, third quartile) of the per-round ratios."""
    return tuple(statistics.quantiles([a / b for a, b in zip(numerators, denominators)], n=4))


def step_times(copies, batch, repeats):
    """Per-round seconds: GLR step (plain and XLA), noise floor, BP step."""
    x = np.random.default_rng(0).uniform(size=(batch, 196)).astype("float32")
    y = (np.arange(batch) % 10).astype("int32")
    functions = {}
    for jit in (False, True):
        glr = network()
        glr.compile(keras.optimizers.SGD(0.1), CE, copies=copies, jit_compile=jit)
        functions[f"glr{' jit' if jit else ''}"] = lambda model=glr: model.train_on_batch(x, y)
    distribution = Gaussian(2.0)

    def floor(draw):
        # The step's draws: every layer's B * K * units values. The sum keeps
        # every value alive (an unused draw may be pruned) and costs ~2%.
        @tf.function
        def noise_only(seed):
            return tf.add_n([tf.reduce_sum(draw(copies * units, stream_key(seed + layer))) for layer, units in ((0, 20), (1, 10))])

        return lambda: noise_only(tf.constant([1, 2])).numpy()

    # The library's sampler, and TensorFlow's own Gaussian kernel for reference.
    functions["noise"] = floor(lambda length, key: distribution.sample_rows(batch, length, key, 0))
    functions["tf normal"] = floor(
        lambda length, key: distribution.stddev * tf.random.stateless_normal([batch, length], seed=tf.bitcast(key, tf.int32)[0], alg="philox")
    )
    bp = network("sigmoid")
    bp.compile(keras.optimizers.SGD(0.1), CE, copies=1, estimator="bp")
    functions["bp"] = lambda: bp.train_on_batch(x, y)
    return interleaved_times(functions, repeats)


LEARNING_RATES = (0.01, 0.02, 0.03, 0.05)
GLR_COPIES = 100
NOISE_SCALES = {"sigmoid": (0.5, 1.0), "step": (1.0,)}


def _summary(setting, per_seed, target):
    """Medians over seeds of the (seconds, epochs) to `target`; per_seed: [(elapsed s, test accuracy) per epoch]."""
    reached = [next(((s, e) for e, (s, a) in enumerate(points, 1) if a >= target), None) for points in per_seed]
    times = [r or (math.inf, math.inf) for r in reached]
    hits = [r for r in reached if r]
    later = [b - a for points in per_seed for (a, _), (b, _) in zip(points, points[1:])]
    return {"seconds": statistics.median(t for t, _ in times), "epochs": statistics.median(e for _, e in times),
            "first_epoch_s": statistics.median(points[0][0] for points in per_seed),
            "later_epoch_s": statistics.median(later) if later else None,
            "range": [min(s for s, _ in hits), max(s for s, _ in hits)] if hits else None,
            "reached": f"{len(hits)}/{len(per_seed)}", "setting": setting,
            "best_accuracy": max(a for points in per_seed for _, a in points)}


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


def arch_time_to_accuracy(arch, max_epochs, seeds, image_size=14, margin=0.03, control="bp", control_options=None,
                          train_through=False):
    """BP (or `control`) against GLR with `glr-train --arch ARCH`'s defaults, to the control's accuracy minus `margin`.

    Each trains as `runs.train` builds it (`RunConfig.for_arch(arch=arch)`,
    GLR; `estimator=control` and `control_options` for the control) for every
    seed; the control trains `max_epochs`, GLR stops at the target unless
    `train_through` (then it trains `max_epochs` too, and "final_accuracy"
    is comparable). Returns {name: `_summary` + "target", "final_accuracy"
    (the mean over seeds after the last epoch trained), "final_per_seed"}.
    """
    from keras_glr import run_config

    def curve(estimator, seed, stop_at=None, **options):
        config = run_config.RunConfig.for_arch(arch=arch, estimator=estimator, seed=seed, epochs=max_epochs, image_size=image_size,
                                               **options)
        keras.utils.set_random_seed(seed)
        splits = data.load("mnist5k", batch_size=config.batch_size, image_size=image_size, seed=seed)
        model = run_config.build_model(config, splits.info, splits.steps_per_epoch)
        return _epochs_until(model, splits, max_epochs, stop_at)

    def finals(per_seed):
        return {"final_accuracy": statistics.mean(points[-1][1] for points in per_seed),
                "final_per_seed": [points[-1][1] for points in per_seed],
                "best_per_seed": [max(a for _, a in points) for points in per_seed]}

    options = dict(control_options or {})
    controls = [curve(control, seed, **options) for seed in seeds]
    target = statistics.mean(points[-1][1] for points in controls) - margin
    glr = [curve("glr", seed, stop_at=None if train_through else target) for seed in seeds]
    setting = dict(run_config.ARCH_DEFAULTS[arch], image_size=image_size)
    name = f"{control} {arch}"
    return {name: {"target": target, **_summary({"estimator": control, "image_size": image_size, **options}, controls, target),
                   **finals(controls)},
            f"glr {arch}": {"target": target, "control": name, **_summary(setting, glr, target), **finals(glr)}}


def cnn_time_to_accuracy(max_epochs, seeds):
    """The small CNN at 14 x 14, to BP's accuracy minus three points (`arch_time_to_accuracy`)."""
    return arch_time_to_accuracy("cnn", max_epochs, seeds)


def resnet_time_to_accuracy(max_epochs, seeds):
    """The residual CNN at 28 x 28, to BP's accuracy minus two points; both train all epochs (`arch_time_to_accuracy`)."""
    return arch_time_to_accuracy("resnet", max_epochs, seeds, image_size=28, margin=0.02, train_through=True)


def rnn_time_to_accuracy(max_epochs, seeds):
    """The rnn (rows as time steps) against BPTT on the same network, both 12 epochs, to BPTT's accuracy minus three points."""
    return arch_time_to_accuracy("rnn", max_epochs, seeds, train_through=True)


def snn_time_to_accuracy(max_epochs, seeds):
    """The snn against its surrogate-gradient twin (bp-ste: spikes pass the gradient straight through, the same
    noise sigma, one copy per example), both 12 epochs, to the twin's accuracy minus three points."""
    return arch_time_to_accuracy("snn", max_epochs, seeds, control="bp-ste", control_options={"sigma": 0.3, "copies": 1},
                                 train_through=True)


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
    (`keras_glr.twins`); a control's target is its best final accuracy (mean
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
    controls = {"bp sigmoid": ("sigmoid", {"estimator": "bp"}), "bp-ste step": ("step", {"estimator": "bp-ste", "sigma": 1.0, "copies": GLR_COPIES})}
    control_runs = {name: grid(activation, [{**fixed, "learning_rate": lr} for lr in LEARNING_RATES]) for name, (activation, fixed) in controls.items()}
    targets = {name: max(final(per_seed) for _, per_seed in model_runs) - 0.01 for name, model_runs in control_runs.items()}
    glr_settings = {activation: [{"learning_rate": lr, "sigma": sigma, "copies": GLR_COPIES, "injection": injection}
                                 for injection in INJECTIONS for sigma in NOISE_SCALES[activation] for lr in LEARNING_RATES]
                    for activation in ("step", "sigmoid")}
    step_runs = grid("step", glr_settings["step"], stop_at=max(targets.values()))
    sigmoid_runs = grid("sigmoid", glr_settings["sigmoid"], stop_at=targets["bp sigmoid"])
    compared = {  # name: (runs, control)
        "bp sigmoid": (control_runs["bp sigmoid"], None), "glr sigmoid": (sigmoid_runs, "bp sigmoid"),
        "bp-ste step": (control_runs["bp-ste step"], None), "glr step": (step_runs, "bp-ste step"),
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


_MEMORY = r"""
import os, sys, numpy as np
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import keras
from keras_glr import architectures
chunk = None if sys.argv[1] == "none" else int(sys.argv[1])
model = architectures.mlp((196,), 10)
model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True), copies=10000, copies_per_chunk=chunk)
x = np.random.default_rng(0).uniform(size=(128, 196)).astype("float32")
y = (np.arange(128) % 10).astype("int32")
def status(field):
    line = next(l for l in open("/proc/self/status") if l.startswith(field + ":"))
    return int(line.split()[1]) / 1024
model.train_on_batch(x[:2], y[:2])  # build and trace outside the measurement
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
before = status("VmRSS")
model.train_on_batch(x, y); model.train_on_batch(x, y)
print(before, status("VmHWM"))
"""

_DISTRIBUTED = r"""
import os, statistics, sys, time, numpy as np
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from keras_glr import architectures
x = np.random.default_rng(0).uniform(size=(64 * 40, 196)).astype("float32")
y = (np.arange(len(x)) % 10).astype("int32")
dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(64)
models = []
for devices in (["/cpu:0"], ["/cpu:0", "/cpu:1"]):
    with tf.distribute.MirroredStrategy(devices).scope():
        model = architectures.mlp((196,), 10)
        model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True), copies=1000)
    model.fit(dataset.take(4), verbose=0)
    models.append(model)
rates = [[], []]
for _ in range(int(sys.argv[1])):
    for model, rate in zip(models, rates):
        start = time.perf_counter(); model.fit(dataset, verbose=0); rate.append(40 / (time.perf_counter() - start))
print(*(statistics.median(rate) for rate in rates))
"""


def in_subprocess(script, *args):
    done = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    return [float(v) for v in done.stdout.split()]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", default=None, help="also write the numbers to this file")
    parser.add_argument("--only-mlp", action="store_true", help="only the MLP rows' time to accuracy (item 2: 5 seeds, 20 epochs)")
    parser.add_argument("--only-cnn", action="store_true", help="only the CNN's time to accuracy (3 seeds, 12 epochs; about 3 minutes)")
    parser.add_argument("--only-resnet", action="store_true", help="only the resnet's time to accuracy at 28 x 28 (3 seeds, 12 epochs)")
    parser.add_argument("--only-time", action="store_true", help="only the rnn and snn rows against BPTT and the surrogate twin (3 seeds, 12 epochs)")
    args = parser.parse_args(argv)
    repeats = 5 if args.quick else 31
    rows, numbers = [], {}

    print(f"keras_glr benchmark on {os.cpu_count()} CPU cores, TensorFlow {tf.__version__}, devices: "
          f"{[d.device_type for d in tf.config.list_physical_devices()]}", flush=True)
    cnn_seeds = (0,) if args.quick else (0, 1, 2)
    if args.only_mlp or args.only_cnn or args.only_resnet or args.only_time:
        if args.only_mlp:
            epochs, seeds = (8, (0,)) if args.quick else (20, (0, 1, 2, 3, 4))
            accuracy_rows(time_to_accuracy(epochs, seeds), seeds, epochs, rows, numbers)
        if args.only_cnn:
            accuracy_rows(cnn_time_to_accuracy(12, cnn_seeds), cnn_seeds, 12, rows, numbers)
        if args.only_resnet:
            accuracy_rows(resnet_time_to_accuracy(12, cnn_seeds), cnn_seeds, 12, rows, numbers)
        if args.only_time:
            accuracy_rows({**rnn_time_to_accuracy(12, cnn_seeds), **snn_time_to_accuracy(12, cnn_seeds)}, cnn_seeds, 12, rows, numbers)
        finish(rows, numbers, args.json)
        return
    for label, copies, batch in (("paper: K=10000, batch 25", 10000, 25), ("K=100, batch 32", 100, 32)):
        rounds = step_times(copies, batch, repeats)
        t = {name: statistics.median(seconds) for name, seconds in rounds.items()}
        low, ratio, high = quartiles_of_ratio(rounds["glr"], rounds["noise"])
        tf_ratio = quartiles_of_ratio(rounds["glr"], rounds["tf normal"])[1]
        numbers[f"step time, {label}"] = {**{f"{k}_s": v for k, v in t.items()}, "glr_over_noise_quartiles": [low, ratio, high],
                                          "glr_over_tf_normal": tf_ratio}
        rows.append((f"step time, {label}",
                     f"GLR {t['glr'] * 1e3:.1f} ms, with jit_compile {t['glr jit'] * 1e3:.1f} ms; "
                     f"noise alone {t['noise'] * 1e3:.1f} ms (TensorFlow's normal op: {t['tf normal'] * 1e3:.1f} ms); BP {t['bp'] * 1e3:.1f} ms",
                     f"GLR/noise {ratio:.2f} (quartiles {low:.2f}-{high:.2f}; jit {t['glr jit'] / t['noise']:.2f}); "
                     f"GLR/TF normal op {tf_ratio:.2f}; GLR/BP {t['glr'] / t['bp']:.0f}"))
        print(rows[-1], flush=True)

    epochs = 8 if args.quick else 20
    seeds = (0,) if args.quick else (0, 1, 2, 3, 4)
    accuracy_rows(time_to_accuracy(epochs, seeds), seeds, epochs, rows, numbers)
    accuracy_rows(cnn_time_to_accuracy(12, cnn_seeds), cnn_seeds, 12, rows, numbers)
    accuracy_rows(resnet_time_to_accuracy(12, cnn_seeds), cnn_seeds, 12, rows, numbers)
    accuracy_rows({**rnn_time_to_accuracy(12, cnn_seeds), **snn_time_to_accuracy(12, cnn_seeds)}, cnn_seeds, 12, rows, numbers)

    for chunk in ("none", 64000):
        before, peak = in_subprocess(_MEMORY, chunk)
        numbers[f"peak memory, chunk {chunk}"] = {"resident_before_mb": before, "peak_mb": peak}
        rows.append((f"peak RSS, K=10000, batch 128, copies_per_chunk={chunk}", f"{peak:.0f} MB (resident before the steps: {before:.0f} MB)", "target < 2048 MB"))
        print(rows[-1], flush=True)

    one, two = in_subprocess(_DISTRIBUTED, 2 if args.quick else 7)
    numbers["mirrored steps/s"] = {"1 device": one, "2 devices": two}
    rows.append(("MirroredStrategy, K=1000, batch 64", f"1 device {one:.1f} steps/s; 2 logical CPU devices {two:.1f} steps/s", f"2/1 {two / one:.2f}"))
    print(rows[-1], flush=True)

    finish(rows, numbers, args.json)


def accuracy_rows(accuracy, seeds, epochs, rows, numbers):
    """Appends (and prints) one row per model of a time-to-accuracy result, each GLR row as ratios to its control."""
    for name, result in accuracy.items():
        numbers[f"time to accuracy, {name}"] = {k: (None if v == math.inf else v) for k, v in result.items()}
        label = f"time to {result['target']:.3f} test accuracy, {name}"
        control = accuracy.get(result.get("control"))
        if result["seconds"] == math.inf:
            seen = f"best accuracy seen {result['best_accuracy']:.3f}" if "best_per_seed" not in result else (
                f"best epoch of each seed: {', '.join(f'{a:.3f}' for a in result['best_per_seed'])}; after the last epoch "
                f"{result['final_accuracy']:.3f}; later epochs {result['later_epoch_s']:.2f} s each")
            rows.append((label, f"not reached by most of {len(seeds)} seeds in {epochs} epochs ({seen})", "-"))
        else:
            ratio = "" if control is None else (
                f"GLR/{result['control']} time {result['seconds'] / control['seconds']:.2f} (epochs {result['epochs'] / control['epochs']:.2f}, "
                f"first epoch {result['first_epoch_s'] / control['first_epoch_s']:.2f}, later epochs {result['later_epoch_s'] / control['later_epoch_s']:.2f})")
            setting = ", ".join(f"{key} {value}" for key, value in result["setting"].items())
            low, high = result["range"]
            final = "" if "final_per_seed" not in result else (
                f"; test accuracy after the last epoch {result['final_accuracy']:.3f} (seeds: "
                f"{', '.join(f'{a:.3f}' for a in result['final_per_seed'])}; best epoch of each seed: "
                f"{', '.join(f'{a:.3f}' for a in result['best_per_seed'])})")
            rows.append((label, f"median {result['epochs']:g} epochs, {result['seconds']:.2f} s ({result['reached']} seeds reached it, "
                                f"{low:.2f}-{high:.2f} s) at {setting}; first epoch {result['first_epoch_s']:.2f} s "
                                f"(tracing included), later epochs {result['later_epoch_s']:.2f} s each{final}", ratio))
        print(rows[-1], flush=True)


def finish(rows, numbers, json_path):
    """Prints the table of all rows; writes the numbers to `json_path` when given."""
    print("\n| measurement | values | ratio |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    if json_path:
        with open(json_path, "w") as f:
            json.dump(numbers, f, indent=2)

if __name__ == "__main__":
    main()
