"""Test accuracy and training time after every epoch of one `glr-train` configuration, without a run directory.

    python benchmarks/screen.py --arch resnet --image-size 28 --epochs 3
    python benchmarks/screen.py --arch resnet --image-size 28 --copies 400 --copy-split 2,2,1,1,1,1,1,3
    python benchmarks/screen.py --arch resnet --image-size 28 --epochs 2 --no-fan-out

Takes `glr-train`'s options (unset ones take the architecture's defaults,
`run_config.ARCH_DEFAULTS`), builds and trains the model as `runs.train`
does, and prints one line per epoch: the seconds spent training so far
(tracing included, evaluation not) and the test accuracy. For quick screens
of a setting before it goes into a benchmark or a default. `--no-fan-out`
makes every copy begin at the input (no fan-out at the first noisy layer,
none at each layer-wise group's own), to see what fan-out saves.
"""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

from keras_glr import copies  # noqa: E402
from keras_glr import run_config  # noqa: E402
from keras_glr import runs  # noqa: E402
from keras_glr_apps import train as train_app  # noqa: E402


def main(argv=None):
    argv = given = sys.argv[1:] if argv is None else argv
    if "--no-fan-out" in argv:
        argv = [a for a in argv if a != "--no-fan-out"]
        copies.can_fan_out = copies.can_fan_out_by_layer = lambda model: False
    config = train_app.config_from_args(train_app.build_parser().parse_args(argv))
    config.validate()
    keras.utils.set_random_seed(config.seed)
    splits = runs.load_data(config)
    model = run_config.build_model(config, splits.info, splits.steps_per_epoch)
    print(f"screen: {' '.join(given) or '(defaults)'}", flush=True)
    elapsed = 0.0
    for epoch in range(1, config.epochs + 1):
        start = time.perf_counter()
        model.fit(splits.train, epochs=1, verbose=0)
        elapsed += time.perf_counter() - start
        accuracy = model.evaluate(splits.test, verbose=0)[1]
        print(f"epoch {epoch:2d}  trained {elapsed:7.1f} s  test accuracy {accuracy:.4f}", flush=True)


if __name__ == "__main__":
    main()
