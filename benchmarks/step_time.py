"""Train-step time at the paper's configuration and at K = 100, beside the noise floor and one BP step.

    python benchmarks/step_time.py [--repeats 31]

Prints per-round medians and the ratios of the same rounds (item 1 of
`speed.py`).
"""

import argparse
import statistics

import keras
import numpy as np
import tensorflow as tf
from harness import CE
from harness import interleaved_times
from harness import network
from harness import quartiles_of_ratio

from keras_glr._src.streams import stream_key
from keras_glr.noise import Gaussian


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
            return tf.add_n(
                [tf.reduce_sum(draw(copies * units, stream_key(seed + layer))) for layer, units in ((0, 20), (1, 10))]
            )

        return lambda: noise_only(tf.constant([1, 2])).numpy()

    # The library's sampler, and TensorFlow's own Gaussian kernel for reference.
    functions["noise"] = floor(lambda length, key: distribution.sample_rows(batch, length, key, 0))
    functions["tf normal"] = floor(
        lambda length, key: (
            distribution.stddev
            * tf.random.stateless_normal([batch, length], seed=tf.bitcast(key, tf.int32)[0], alg="philox")
        )
    )
    bp = network("sigmoid")
    bp.compile(keras.optimizers.SGD(0.1), CE, copies=1, estimator="bp")
    functions["bp"] = lambda: bp.train_on_batch(x, y)
    return interleaved_times(functions, repeats)


def step_rows(repeats, rows, numbers):
    """Appends (and prints) one row per configuration: GLR, its jit, the noise floor, BP, and their ratios."""
    for label, copies, batch in (("paper: K=10000, batch 25", 10000, 25), ("K=100, batch 32", 100, 32)):
        rounds = step_times(copies, batch, repeats)
        t = {name: statistics.median(seconds) for name, seconds in rounds.items()}
        low, ratio, high = quartiles_of_ratio(rounds["glr"], rounds["noise"])
        tf_ratio = quartiles_of_ratio(rounds["glr"], rounds["tf normal"])[1]
        numbers[f"step time, {label}"] = {
            **{f"{k}_s": v for k, v in t.items()},
            "glr_over_noise_quartiles": [low, ratio, high],
            "glr_over_tf_normal": tf_ratio,
        }
        rows.append(
            (
                f"step time, {label}",
                f"GLR {t['glr'] * 1e3:.1f} ms, with jit_compile {t['glr jit'] * 1e3:.1f} ms; "
                f"noise alone {t['noise'] * 1e3:.1f} ms (TensorFlow's normal op: {t['tf normal'] * 1e3:.1f} ms); BP "
                f"{t['bp'] * 1e3:.1f} ms",
                f"GLR/noise {ratio:.2f} (quartiles {low:.2f}-{high:.2f}; jit {t['glr jit'] / t['noise']:.2f}); "
                f"GLR/TF normal op {tf_ratio:.2f}; GLR/BP {t['glr'] / t['bp']:.0f}",
            )
        )
        print(rows[-1], flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=31)
    step_rows(parser.parse_args().repeats, [], {})
