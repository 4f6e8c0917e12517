"""Peak resident memory of GLR steps at K = 10000, batch 128 (item 3 of `speed.py`, run in a fresh process).

    python benchmarks/step_memory.py none     # copies_per_chunk: none, or a number of copy rows

Prints the resident memory before the steps and the peak (VmHWM) during two
steps, in MB; the peak is reset after TensorFlow has loaded and the step is
traced.
"""

import os
import sys

import numpy as np

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"

import keras  # noqa: E402

from keras_glr import architectures  # noqa: E402


def status(field):
    """A field of /proc/self/status in MB."""
    line = next(line for line in open("/proc/self/status") if line.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def main(chunk):
    model = architectures.mlp((196,), 10)
    model.compile(
        "sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True), copies=10000, copies_per_chunk=chunk
    )
    x = np.random.default_rng(0).uniform(size=(128, 196)).astype("float32")
    y = (np.arange(128) % 10).astype("int32")
    model.train_on_batch(x[:2], y[:2])  # build and trace outside the measurement
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak (VmHWM) to the current RSS
    before = status("VmRSS")
    model.train_on_batch(x, y)
    model.train_on_batch(x, y)
    print(before, status("VmHWM"))


if __name__ == "__main__":
    main(None if sys.argv[1] == "none" else int(sys.argv[1]))
