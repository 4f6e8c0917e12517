"""What the speed benchmarks share: the paper's network, interleaved timing, subprocesses, the table.

Machines are shared and their speed drifts between minutes, so every
comparison is timed side by side (`interleaved_times`) and reported as
ratios of the same rounds.
"""

import json
import math
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

from keras_glr import architectures  # noqa: E402
from keras_glr.noise import Gaussian  # noqa: E402

FOLDER = os.path.dirname(os.path.abspath(__file__))
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


def run_script(name, *args):
    """Runs benchmarks/<name>.py in a fresh process; returns the numbers it prints on its last line."""
    done = subprocess.run(
        [sys.executable, os.path.join(FOLDER, f"{name}.py"), *map(str, args)], capture_output=True, text=True
    )
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    return [float(v) for v in done.stdout.split("\n")[-2].split()]


def accuracy_rows(accuracy, seeds, epochs, rows, numbers):
    """Appends (and prints) one row per model of a time-to-accuracy result, each GLR row as ratios to its control."""
    for name, result in accuracy.items():
        numbers[f"time to accuracy, {name}"] = {k: (None if v == math.inf else v) for k, v in result.items()}
        label = f"time to {result['target']:.3f} test accuracy, {name}"
        control = accuracy.get(result.get("control"))
        if result["seconds"] == math.inf:
            seen = (
                f"best accuracy seen {result['best_accuracy']:.3f}"
                if "best_per_seed" not in result
                else (
                    f"best epoch of each seed: {', '.join(f'{a:.3f}' for a in result['best_per_seed'])}; after the "
                    "last epoch "
                    f"{result['final_accuracy']:.3f}; later epochs {result['later_epoch_s']:.2f} s each"
                )
            )
            rows.append((label, f"not reached by most of {len(seeds)} seeds in {epochs} epochs ({seen})", "-"))
        else:
            ratio = (
                ""
                if control is None
                else (
                    f"GLR/{result['control']} time {result['seconds'] / control['seconds']:.2f} (epochs "
                    f"{result['epochs'] / control['epochs']:.2f}, "
                    f"first epoch {result['first_epoch_s'] / control['first_epoch_s']:.2f}, later epochs "
                    f"{result['later_epoch_s'] / control['later_epoch_s']:.2f})"
                )
            )
            setting = ", ".join(f"{key} {value}" for key, value in result["setting"].items())
            low, high = result["range"]
            final = (
                ""
                if "final_per_seed" not in result
                else (
                    f"; test accuracy after the last epoch {result['final_accuracy']:.3f} (seeds: "
                    f"{', '.join(f'{a:.3f}' for a in result['final_per_seed'])}; best epoch of each seed: "
                    f"{', '.join(f'{a:.3f}' for a in result['best_per_seed'])})"
                )
            )
            rows.append(
                (
                    label,
                    f"median {result['epochs']:g} epochs, {result['seconds']:.2f} s ({result['reached']} seeds "
                    "reached it, "
                    f"{low:.2f}-{high:.2f} s) at {setting}; first epoch {result['first_epoch_s']:.2f} s "
                    f"(tracing included), later epochs {result['later_epoch_s']:.2f} s each{final}",
                    ratio,
                )
            )
        print(rows[-1], flush=True)


def finish(rows, numbers, json_path):
    """Prints the table of all rows; writes the numbers to `json_path` when given."""
    print("\n| measurement | values | ratio |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    if json_path:
        with open(json_path, "w") as f:
            json.dump(numbers, f, indent=2)
