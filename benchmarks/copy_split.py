"""Where the CNN's layer-wise copies go: step time and accuracy per split.

    python benchmarks/copy_split.py                      # about 12 minutes on 2 cores
    python benchmarks/copy_split.py --splits 68,66,66 34,66,132 --seeds 0
    python benchmarks/copy_split.py --pool output    # the CNN pooling each layer's output

Each split lists the copies of conv 1, conv 2 and the logits (their sum is
K). Everything else is `glr-train --arch cnn`'s defaults
(`runs.ARCH_DEFAULTS`), `--pool` included. Prints two tables:
    the median seconds of one training step (batch 32), the splits'
    steps interleaved in one loop, so they are measured side by side;
    the test accuracy after `--epochs` epochs for each seed, trained as
    `runs.train` builds the model (without its run directory).
A copy of conv 1's group runs through conv 2 and the logits, one of the
logits' group through the loss only, so the splits cost differently.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

from keras_glr import architectures  # noqa: E402
from keras_glr import data  # noqa: E402
from keras_glr import runs  # noqa: E402

SPLITS = ("68,66,66", "68,66,132", "50,50,100", "50,50,200", "34,34,132", "34,66,132", "34,66,266")


def cnn(split, seed, splits, pool):
    """The `--arch cnn` model with its copies split as `split` (a tuple of sizes)."""
    config = runs.RunConfig.for_arch(arch="cnn", seed=seed, copies=sum(split), pool=pool)
    keras.utils.set_random_seed(seed)
    model = runs.build_model(config, splits.info, splits.steps_per_epoch)
    model.compile(
        model.optimizer,
        model.loss,
        metrics=["accuracy"],
        copies=sum(split),
        antithetic=config.antithetic,
        injection="layerwise",
        copies_per_layer=split,
    )
    return model


def step_times(splits_to_time, pool, repeats=20):
    """{split: median seconds of one train step}, the splits interleaved."""
    splits = data.load("mnist5k", batch_size=32, image_size=14, seed=0)
    x, y = next(iter(splits.train))
    steps = {}
    for split in splits_to_time:
        model = cnn(split, 0, splits, pool)
        model.fit(x, y, epochs=1, verbose=0, batch_size=32)  # trace
        steps[split] = (lambda m: lambda: m.train_function(iter([(x, y)])))(model)
    times = {split: [] for split in steps}
    for _ in range(repeats):
        for split, step in steps.items():
            started = time.perf_counter()
            [value.numpy() for value in step().values()]
            times[split].append(time.perf_counter() - started)
    return {split: statistics.median(t) for split, t in times.items()}


def accuracy(split, seed, epochs, pool):
    """Test accuracy after `epochs` epochs."""
    splits = data.load("mnist5k", batch_size=32, image_size=14, seed=seed)
    model = cnn(split, seed, splits, pool)
    model.fit(splits.train, epochs=epochs, verbose=0)
    return model.evaluate(splits.test, verbose=0)[1]


def parse_split(text):
    try:
        split = tuple(int(part) for part in text.split(","))
    except ValueError:
        split = ()
    if len(split) != 3 or any(s < 2 or s % 2 for s in split):
        raise argparse.ArgumentTypeError(
            f"expected three even copy counts such as 34,66,132 (pairs); received {text!r}"
        )
    return split


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--splits", nargs="+", type=parse_split, default=[parse_split(s) for s in SPLITS])
    parser.add_argument("--seeds", type=lambda t: [int(s) for s in t.split(",")], default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument(
        "--pool",
        choices=architectures.CNN_POOLS,
        default=runs.ARCH_DEFAULTS["cnn"]["pool"],
        help="where the conv layers pool (glr-train --pool)",
    )
    args = parser.parse_args()
    seconds = step_times(args.splits, args.pool)
    print("| copies per layer (conv 1, conv 2, logits) | step | " + " | ".join(f"seed {s}" for s in args.seeds) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in args.seeds) + " |", flush=True)
    for split in args.splits:
        cells = [f"{accuracy(split, seed, args.epochs, args.pool):.4f}" for seed in args.seeds]
        print(
            f"| {', '.join(map(str, split))} | {1000 * seconds[split]:.1f} ms | " + " | ".join(cells) + " |", flush=True
        )


if __name__ == "__main__":
    main()
