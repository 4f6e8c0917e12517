"""Test accuracy and training time after every epoch of one `glr-train` configuration, without a run directory.

    python benchmarks/screen.py --arch resnet --image-size 28 --epochs 3
    python benchmarks/screen.py --arch resnet --image-size 28 --copies 400 --copy-split 2,2,1,1,1,1,1,3
    python benchmarks/screen.py --arch resnet --image-size 28 --epochs 2 --no-fan-out
    python benchmarks/screen.py --arch resnet --image-size 28 --seeds 0,1,2

Takes `glr-train`'s options (unset ones take the architecture's defaults,
`runs.ARCH_DEFAULTS`), builds and trains the model as `runs.train`
does, and prints one line per epoch: the seconds spent training so far
(tracing included, evaluation not), the epoch's mean training loss (of
the noisy copies, for GLR) and the test accuracy. `--seeds 0,1,2` trains
once per seed (as `benchmarks/speed.py` does, same splits) and ends with
each seed's final test accuracy, their mean and lowest. For quick screens
of a setting before it goes into a benchmark or a default. `--no-fan-out`
makes every copy begin at the input (no fan-out at the first noisy layer,
none at each layer-wise group's own), to see what fan-out saves.
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

from keras_glr import runs  # noqa: E402
from keras_glr._src import copies  # noqa: E402
from keras_glr_apps import train as train_app  # noqa: E402


def _seed_list(text):
    try:
        return [int(seed) for seed in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers such as 0,1,2; received {text!r}"
        ) from None


def _own_options(argv):
    """Splits off this script's options (`--seeds`, `--no-fan-out`); the rest are `glr-train`'s."""
    parser = argparse.ArgumentParser(
        prog="screen.py", add_help=False, allow_abbrev=False
    )  # -h and `--seed` are glr-train's
    parser.add_argument("--seeds", type=_seed_list, help="train once per seed, e.g. 0,1,2")
    parser.add_argument("--no-fan-out", action="store_true", help="every copy begins at the input")
    return parser.parse_known_args(argv)


def screen(argv):
    """Trains one configuration epoch by epoch; returns [test accuracy after each epoch]."""
    config = train_app.config_from_args(train_app.build_parser().parse_args(argv))
    config.validate()
    keras.utils.set_random_seed(config.seed)
    splits = runs.load_data(config)
    model = runs.build_model(config, splits.info, splits.steps_per_epoch)
    elapsed, accuracies = 0.0, []
    for epoch in range(1, config.epochs + 1):
        start = time.perf_counter()
        history = model.fit(splits.train, epochs=1, verbose=0).history
        elapsed += time.perf_counter() - start
        accuracies.append(model.evaluate(splits.test, verbose=0)[1])
        print(
            f"seed {config.seed}  epoch {epoch:2d}  trained {elapsed:7.1f} s  training loss {history['loss'][-1]:.4f}  "
            f"test accuracy {accuracies[-1]:.4f}",
            flush=True,
        )
    return accuracies


def main(argv=None):
    given = sys.argv[1:] if argv is None else argv
    options, argv = _own_options(given)
    if options.no_fan_out:
        copies.can_fan_out = copies.can_fan_out_by_layer = lambda model: False
    print(f"screen: {' '.join(given) or '(defaults)'}", flush=True)
    if options.seeds is None:
        screen(argv)
        return
    curves = [screen(argv + ["--seed", str(seed)]) for seed in options.seeds]
    finals = [curve[-1] for curve in curves]
    print(
        f"final per seed {' / '.join(f'{a:.4f}' for a in finals)}  mean {statistics.mean(finals):.4f}  "
        f"lowest {min(finals):.4f}  best per seed {' / '.join(f'{max(c):.4f}' for c in curves)}",
        flush=True,
    )


if __name__ == "__main__":
    main()
