"""Test accuracy and training time after every epoch of one `glr-train` configuration, without a run directory.

    python benchmarks/screen.py --arch resnet --image-size 28 --epochs 3
    python benchmarks/screen.py --arch resnet --image-size 28 --copies 400 --copy-split 2,2,1,1,1,1,1,3
    python benchmarks/screen.py --arch resnet --image-size 28 --epochs 2 --no-fan-out
    python benchmarks/screen.py --arch resnet --image-size 28 --seeds 0,1,2

Takes `glr-train`'s options (unset ones take the architecture's defaults,
`run_config.ARCH_DEFAULTS`), builds and trains the model as `runs.train`
does, and prints one line per epoch: the seconds spent training so far
(tracing included, evaluation not), the epoch's mean training loss (of
the noisy copies, for GLR) and the test accuracy. `--seeds 0,1,2` trains
once per seed (as `benchmarks/speed.py` does, same splits) and ends with
each seed's final test accuracy, their mean and lowest. For quick screens
of a setting before it goes into a benchmark or a default. `--no-fan-out`
makes every copy begin at the input (no fan-out at the first noisy layer,
none at each layer-wise group's own), to see what fan-out saves.
"""

import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

from keras_glr import copies  # noqa: E402
from keras_glr import run_config  # noqa: E402
from keras_glr import runs  # noqa: E402
from keras_glr_apps import train as train_app  # noqa: E402


def _seeds(argv):
    """Removes `--seeds 0,1,2` from argv; returns (argv, seeds or None)."""
    if "--seeds" not in argv:
        return argv, None
    at = argv.index("--seeds")
    try:
        seeds = [int(s) for s in argv[at + 1].split(",")]
    except (IndexError, ValueError):
        raise SystemExit(f"screen.py: --seeds takes comma-separated integers such as 0,1,2; received {argv[at + 1:at + 2]}.")
    return argv[:at] + argv[at + 2:], seeds


def screen(argv):
    """Trains one configuration epoch by epoch; returns [test accuracy after each epoch]."""
    config = train_app.config_from_args(train_app.build_parser().parse_args(argv))
    config.validate()
    keras.utils.set_random_seed(config.seed)
    splits = runs.load_data(config)
    model = run_config.build_model(config, splits.info, splits.steps_per_epoch)
    elapsed, accuracies = 0.0, []
    for epoch in range(1, config.epochs + 1):
        start = time.perf_counter()
        history = model.fit(splits.train, epochs=1, verbose=0).history
        elapsed += time.perf_counter() - start
        accuracies.append(model.evaluate(splits.test, verbose=0)[1])
        print(f"seed {config.seed}  epoch {epoch:2d}  trained {elapsed:7.1f} s  training loss {history['loss'][-1]:.4f}  "
              f"test accuracy {accuracies[-1]:.4f}", flush=True)
    return accuracies


def main(argv=None):
    argv = given = sys.argv[1:] if argv is None else argv
    if "--no-fan-out" in argv:
        argv = [a for a in argv if a != "--no-fan-out"]
        copies.can_fan_out = copies.can_fan_out_by_layer = lambda model: False
    argv, seeds = _seeds(argv)
    print(f"screen: {' '.join(given) or '(defaults)'}", flush=True)
    if seeds is None:
        screen(argv)
        return
    curves = [screen(argv + ["--seed", str(seed)]) for seed in seeds]
    finals = [curve[-1] for curve in curves]
    print(f"final per seed {' / '.join(f'{a:.4f}' for a in finals)}  mean {statistics.mean(finals):.4f}  "
          f"lowest {min(finals):.4f}  best per seed {' / '.join(f'{max(c):.4f}' for c in curves)}", flush=True)

if __name__ == "__main__":
    main()
