"""The noise of converted networks: the first GLR step's mean copy loss against the clean loss.

    python benchmarks/converted_noise.py                  # about 4 minutes on 2 cores
    python benchmarks/converted_noise.py --families ResNet50V2 --size 64

For each keras.applications family (weights=None: offline; logits out), on
8 inputs of size x size x 3 drawn uniformly over the pixel range the family
expects: `keras_glr.convert` with its default noise (each layer's Gaussian
noise 0.1 times the spread of its noiseless pre-activation on those inputs)
and with one fixed `Gaussian(0.1)` at every layer; then one GLR step of
K = 4 copies at learning rate 0, whose loss is the mean over the copies.
Prints the clean loss, each first-step loss and its ratio to the clean loss
(target: at most 3 with the default noise), and the spread of the scales set.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_glr  # noqa: E402
from keras_glr.layers import noisy_layers  # noqa: E402
from keras_glr.noise import Gaussian  # noqa: E402

#: family -> the pixel range it expects (those that rescale inside take 0-255)
FAMILIES = {
    "MobileNetV2": (-1, 1),
    "EfficientNetB0": (0, 255),
    "DenseNet121": (-2, 2),
    "ResNet50V2": (-1, 1),
    "ConvNeXtTiny": (0, 255),
}


def first_step(family, size, noise, seed=0):
    """(clean loss, first-step mean copy loss, [each noisy layer's noise sd], noisy layers) for one family."""
    original = getattr(keras.applications, family)(
        weights=None, input_shape=(size, size, 3), classes=10, classifier_activation=None
    )
    rng = np.random.default_rng(seed)
    x = rng.uniform(*FAMILIES[family], (8, size, size, 3)).astype("float32")
    y = np.arange(8) % 10
    converted = keras_glr.convert(original, noise=noise, calibration=x, seed=seed)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    converted.compile(keras.optimizers.SGD(0.0), loss, copies=4)
    clean = converted.evaluate(x, y, verbose=0)
    step = converted.fit(x, y, batch_size=8, epochs=1, verbose=0).history["loss"][0]
    layers = noisy_layers(converted)
    return clean, step, [layer.noise.stddev for layer in layers], len(layers)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", default=",".join(FAMILIES), help="comma-separated keras.applications names")
    parser.add_argument("--size", type=int, default=32, help="input height and width")
    args = parser.parse_args(argv)
    print(
        "| network | noisy layers | clean loss | first step, default noise (ratio) | noise sd set, min-max | "
        "first step, Gaussian(0.1) everywhere (ratio) | seconds |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for family in args.families.split(","):
        start = time.perf_counter()
        clean, relative, scales, layers = first_step(family, args.size, None)
        _, fixed, _, _ = first_step(family, args.size, Gaussian(0.1))
        print(
            f"| {family} | {layers} | {clean:.4f} | {relative:.4f} ({relative / clean:.3f}) | "
            f"{min(scales):.3g}-{max(scales):.3g} | {fixed:.4f} ({fixed / clean:.3f}) | "
            f"{time.perf_counter() - start:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
