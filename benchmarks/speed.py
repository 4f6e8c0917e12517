"""GLR speed and scale, measured side by side in one run; prints one table.

    python benchmarks/speed.py            # everything (about 50 minutes on 2 cores)
    python benchmarks/speed.py --quick    # fewer repeats, smaller time-to-accuracy
    python benchmarks/speed.py --only-mlp # item 2 alone: the MLP rows against BP and bp-ste (30 minutes)
    python benchmarks/speed.py --only-cnn # item 2b alone (about 3 minutes)
    python benchmarks/speed.py --only-resnet  # item 2c alone (about 12 minutes)
    python benchmarks/speed.py --only-time    # item 2d alone: the rnn and the snn
    python benchmarks/speed.py --only-transformer  # item 2e alone (about 5 minutes)

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
   cnn`'s defaults (`runs.ARCH_DEFAULTS`), to BP's mean final accuracy
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
2e. The transformer (`glr-train --arch transformer`, its defaults) against
   BP on the same network, 12 epochs each on 3 seeds; both train all 12
   epochs; the time to BP's accuracy minus three points and each seed's
   final test accuracy.
3. Peak resident memory of GLR steps at K = 10000, batch 128 (one process
   each; with and without `copies_per_chunk`; the peak is reset after
   TensorFlow has loaded and the step is traced).
4. Steps per second under MirroredStrategy with 2 logical CPU devices against 1
   (both models in one process, epochs alternating; medians).

Each measurement is its own module (`step_time.py`, `time_to_accuracy.py`,
`step_memory.py`, `mirrored.py`) on a shared harness (`harness.py`); this
script runs them and prints one table.

Targets: step <= 1.25 x noise floor at the paper's configuration; peak memory
< 2 GB; GLR within 2 x its control's wall time to the same accuracy; the CNN by GLR
within 5 x BP's wall time to BP's accuracy minus three points; the resnet
by GLR at least 0.96 within 12 epochs, and within 6 x BP's wall time to BP's
accuracy minus two points; the rnn within 3 points of BPTT and the snn at least
as accurate as its twin and 0.90, each within 8 x its control's wall time to
the control's accuracy minus three points; the transformer within 3 points of
BP after 12 epochs (3 seeds), its time to BP's accuracy minus three points
stated as a ratio.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402
from harness import accuracy_rows  # noqa: E402
from harness import finish  # noqa: E402
from harness import run_script  # noqa: E402
from step_time import step_rows  # noqa: E402
from time_to_accuracy import cnn_time_to_accuracy  # noqa: E402
from time_to_accuracy import resnet_time_to_accuracy  # noqa: E402
from time_to_accuracy import rnn_time_to_accuracy  # noqa: E402
from time_to_accuracy import snn_time_to_accuracy  # noqa: E402
from time_to_accuracy import time_to_accuracy  # noqa: E402
from time_to_accuracy import transformer_time_to_accuracy  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", default=None, help="also write the numbers to this file")
    parser.add_argument(
        "--only-mlp", action="store_true", help="only the MLP rows' time to accuracy (item 2: 5 seeds, 20 epochs)"
    )
    parser.add_argument(
        "--only-cnn", action="store_true", help="only the CNN's time to accuracy (3 seeds, 12 epochs; about 3 minutes)"
    )
    parser.add_argument(
        "--only-resnet", action="store_true", help="only the resnet's time to accuracy at 28 x 28 (3 seeds, 12 epochs)"
    )
    parser.add_argument(
        "--only-time",
        action="store_true",
        help="only the rnn and snn rows against BPTT and the surrogate twin (3 seeds, 12 epochs)",
    )
    parser.add_argument(
        "--only-transformer",
        action="store_true",
        help="only the transformer against BP (3 seeds, 12 epochs; about 5 minutes)",
    )
    args = parser.parse_args(argv)
    repeats = 5 if args.quick else 31
    rows, numbers = [], {}

    print(
        f"keras_glr benchmark on {os.cpu_count()} CPU cores, TensorFlow {tf.__version__}, devices: "
        f"{[d.device_type for d in tf.config.list_physical_devices()]}",
        flush=True,
    )
    cnn_seeds = (0,) if args.quick else (0, 1, 2)
    if args.only_mlp or args.only_cnn or args.only_resnet or args.only_time or args.only_transformer:
        if args.only_mlp:
            epochs, seeds = (8, (0,)) if args.quick else (20, (0, 1, 2, 3, 4))
            accuracy_rows(time_to_accuracy(epochs, seeds), seeds, epochs, rows, numbers)
        if args.only_cnn:
            accuracy_rows(cnn_time_to_accuracy(12, cnn_seeds), cnn_seeds, 12, rows, numbers)
        if args.only_resnet:
            accuracy_rows(resnet_time_to_accuracy(12, cnn_seeds), cnn_seeds, 12, rows, numbers)
        if args.only_time:
            accuracy_rows(
                {**rnn_time_to_accuracy(12, cnn_seeds), **snn_time_to_accuracy(12, cnn_seeds)},
                cnn_seeds,
                12,
                rows,
                numbers,
            )
        if args.only_transformer:
            accuracy_rows(transformer_time_to_accuracy(12, cnn_seeds), cnn_seeds, 12, rows, numbers)
        finish(rows, numbers, args.json)
        return
    step_rows(repeats, rows, numbers)

    epochs = 8 if args.quick else 20
    seeds = (0,) if args.quick else (0, 1, 2, 3, 4)
    accuracy_rows(time_to_accuracy(epochs, seeds), seeds, epochs, rows, numbers)
    accuracy_rows(cnn_time_to_accuracy(12, cnn_seeds), cnn_seeds, 12, rows, numbers)
    accuracy_rows(resnet_time_to_accuracy(12, cnn_seeds), cnn_seeds, 12, rows, numbers)
    accuracy_rows(
        {**rnn_time_to_accuracy(12, cnn_seeds), **snn_time_to_accuracy(12, cnn_seeds)}, cnn_seeds, 12, rows, numbers
    )
    accuracy_rows(transformer_time_to_accuracy(12, cnn_seeds), cnn_seeds, 12, rows, numbers)

    for chunk in ("none", 64000):
        before, peak = run_script("step_memory", chunk)
        numbers[f"peak memory, chunk {chunk}"] = {"resident_before_mb": before, "peak_mb": peak}
        rows.append(
            (
                f"peak RSS, K=10000, batch 128, copies_per_chunk={chunk}",
                f"{peak:.0f} MB (resident before the steps: {before:.0f} MB)",
                "target < 2048 MB",
            )
        )
        print(rows[-1], flush=True)

    one, two = run_script("mirrored", 2 if args.quick else 7)
    numbers["mirrored steps/s"] = {"1 device": one, "2 devices": two}
    rows.append(
        (
            "MirroredStrategy, K=1000, batch 64",
            f"1 device {one:.1f} steps/s; 2 logical CPU devices {two:.1f} steps/s",
            f"2/1 {two / one:.2f}",
        )
    )
    print(rows[-1], flush=True)

    finish(rows, numbers, args.json)


if __name__ == "__main__":
    main()
