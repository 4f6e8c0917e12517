"""Chunked copies and multi-device training give the single-pass result."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_glr
from keras_glr._src import checkpoints
from keras_glr.layers import NoisyDense
from keras_glr.noise import Laplace


def _model(antithetic):
    model = keras_glr.GLRSequential(
        [
            keras.Input((6,)),
            NoisyDense(5, "step", kernel_regularizer=keras.regularizers.L2(0.01)),
            NoisyDense(3, noise=Laplace(0.7)),
        ]
    )
    model.compile("sgd", "zero_one", copies=8, antithetic=antithetic)
    return model


@pytest.mark.parametrize("injection", ["all", "layerwise"])
@pytest.mark.parametrize("antithetic", [False, True])
@pytest.mark.parametrize("copies_per_chunk", [8, 20, 24])
def test_chunked_copies_give_the_unchunked_estimate(antithetic, copies_per_chunk, injection):
    model = _model(antithetic)
    model.compile("sgd", "zero_one", copies=8, antithetic=antithetic, injection=injection)
    x = np.random.default_rng(0).uniform(size=(7, 6)).astype("float32")
    y = np.arange(7) % 3
    states = checkpoints.noise_states(model)
    whole = model.estimate_gradients(x, y)
    checkpoints.restore_noise_states(model, states)
    model.compile(
        "sgd", "zero_one", copies=8, antithetic=antithetic, copies_per_chunk=copies_per_chunk, injection=injection
    )
    chunked = model.estimate_gradients(x, y)
    assert any(np.any(g != 0) for g in whole)
    for a, b in zip(whole, chunked):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_chunked_training_runs_and_reports_metrics():
    model = _model(False)
    model.compile("sgd", "zero_one", metrics=["accuracy"], copies=8, copies_per_chunk=16)
    x = np.random.default_rng(0).uniform(size=(40, 6)).astype("float32")
    history = model.fit(x, np.arange(40) % 3, batch_size=10, epochs=1, verbose=0)
    assert 0 <= history.history["accuracy"][0] <= 1 and 0 <= history.history["loss"][0] <= 1


def test_invalid_chunk_size():
    with pytest.raises(ValueError, match="copies_per_chunk=0"):
        _model(False).compile("sgd", "zero_one", copies=8, copies_per_chunk=0)


_DISTRIBUTED = r"""
import json, os, sys
import numpy as np
import tensorflow as tf
devices, injection, kind, estimator = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
estimator, _, shaping = estimator.partition("+")  # "weight-perturbation+centred-ranks"
shaped = {"fitness_shaping": shaping} if shaping else {}
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, keras_glr
from keras_glr.layers import Noisy, NoisyDense
L = keras.layers
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"][:devices])
results = []
# Even shards; a last batch of 1 (one replica gets no example); odd batches (8 + 7).
for examples, batch in [(64, 16), (49, 16), (45, 15)]:
    keras.utils.set_random_seed(3)
    x = np.random.default_rng(0).uniform(size=(examples, 6)).astype("float32")
    y = (np.arange(examples) % 3).astype("int32")
    with strategy.scope():
        normalized = [Noisy(L.Dense(5), "step"), Noisy(L.LayerNormalization(), "tanh"),
                      Noisy(L.BatchNormalization(momentum=0.5), "tanh")]
        hidden = {"dense": [NoisyDense(5, "step")], "smooth": [NoisyDense(5, "sigmoid")]}.get(kind, normalized)
        model = keras_glr.GLRSequential([keras.Input((6,)), *hidden, NoisyDense(3)], seed=1)
        model.compile(keras.optimizers.SGD(0.5), keras.losses.SparseCategoricalCrossentropy(from_logits=True), copies=6,
                      injection=injection, estimator=estimator, **shaped)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)
    history = model.fit(dataset, epochs=2, verbose=0)
    statistics = [np.asarray(w).tolist() for w in model.non_trainable_weights if "moving" in w.path]  # every replica's
    weights = [np.asarray(w).tolist() for w in model.trainable_weights] + statistics
    results.append({"weights": weights, "loss": history.history["loss"]})
print(json.dumps(results))
"""


@pytest.mark.slow  # two subprocesses per case (25 s each): the default suite stays under 10 minutes on 2 cores
@pytest.mark.parametrize(
    "injection, kind, estimator",
    [
        ("all", "dense", "glr"),
        ("layerwise", "dense", "glr"),
        ("layerwise", "wrapped", "glr"),
        ("all", "dense", "weight-perturbation"),
        ("all", "dense", "weight-perturbation+centred-ranks"),  # every replica ranks the whole batch's losses
        ("all", "dense", "spsa"),  # moved in place on one device, stateless on two
        ("all", "smooth", "forward-gradient"),
    ],
)
def test_mirrored_strategy_on_two_devices_matches_one_with_even_and_uneven_shards(injection, kind, estimator):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    runs = []
    for devices in (1, 2):
        done = subprocess.run(
            [sys.executable, "-c", _DISTRIBUTED, str(devices), injection, kind, estimator],
            capture_output=True,
            text=True,
            env=env,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    for one, two in zip(*runs):
        np.testing.assert_allclose(one["loss"], two["loss"], rtol=1e-5)
        for a, b in zip(one["weights"], two["weights"]):
            np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-4, atol=1e-5)
