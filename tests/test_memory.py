"""The step's memory is checked before training: a step that cannot fit is refused with a chunk size that fits."""

import keras
import numpy as np
import pytest

import keras_glr
from keras_glr._src import memory
from keras_glr.layers import NoisyDense


def _model(copies, copies_per_chunk=None):
    model = keras_glr.GLRSequential([keras.Input((196,)), NoisyDense(20, "step"), NoisyDense(10)])
    model.compile("sgd", "zero_one", copies=copies, copies_per_chunk=copies_per_chunk)
    return model


def test_the_estimate_counts_every_layers_outputs_for_each_copy_row():
    model = _model(100)
    assert memory.values_per_example(model) == 20 + 10
    assert memory.rows(model, 32) == 3200
    assert memory.step_bytes(model, 32) == 3200 * 4 * memory.FACTOR * 30
    assert memory.rows(_model(100, copies_per_chunk=1000), 32) == 1000  # whole examples: 10 of them


def test_a_step_that_does_not_fit_is_refused_with_a_chunk_that_fits():
    model = _model(1000)
    available = memory.step_bytes(model, 32) / 4 / memory.SHARE  # a quarter of what the step needs
    with pytest.raises(
        memory.StepMemoryError,
        match=r"32,000 example copies at once: about .* GiB.* Pass copies_per_chunk=8000 \(the same estimate, "
        r"computed 8 examples",
    ):
        memory.check_step(model, 32, available=available)
    memory.check_step(_model(1000, copies_per_chunk=8000), 32, available=available)  # the advice is enough


def test_a_step_whose_tensors_overflow_32_bit_sizes_is_refused_whatever_the_memory():
    model = _model(10_000_000)
    with pytest.raises(memory.StepMemoryError, match=r"6,400,000,000 values, more than TensorFlow's 2,147,483,647"):
        memory.check_step(model, 32, available=10**15)
    memory.check_step(_model(10_000_000, copies_per_chunk=30_000_000), 32, available=10**15)


def test_one_examples_copies_that_alone_do_not_fit_ask_for_fewer_copies():
    model = _model(1000)
    with pytest.raises(
        memory.StepMemoryError, match=r"One example's 1,000 copies alone do not fit: use at most copies=500"
    ):
        memory.check_step(model, 32, available=500 * 4 * memory.FACTOR * 30 / memory.SHARE)


def test_fit_checks_the_step_before_training():
    model = _model(10_000_000)
    x, y = np.zeros((32, 196), "float32"), np.zeros(32, "int32")
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match="more than TensorFlow's"):
        model.fit(x, y, batch_size=32, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
