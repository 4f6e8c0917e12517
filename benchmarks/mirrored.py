"""Steps per second under MirroredStrategy with 2 logical CPU devices against 1 (item 4 of `speed.py`).

    python benchmarks/mirrored.py 7     # rounds; prints the medians: 1 device, 2 devices

Both models live in one process and their epochs alternate, so both see the
same machine load.
"""

import os
import statistics
import sys
import time

import numpy as np

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"

import tensorflow as tf  # noqa: E402


def main(rounds):
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
    for _ in range(rounds):
        for model, rate in zip(models, rates):
            start = time.perf_counter()
            model.fit(dataset, verbose=0)
            rate.append(40 / (time.perf_counter() - start))
    print(*(statistics.median(rate) for rate in rates))


if __name__ == "__main__":
    main(int(sys.argv[1]))
