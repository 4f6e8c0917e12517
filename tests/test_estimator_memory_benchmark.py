"""benchmarks/estimator_memory.py: weight perturbation and SPSA steps hold one perturbed network at a time."""

import pytest

from tests.benchmark_scripts import load


@pytest.fixture(scope="module")
def memory():
    return load("estimator_memory")


@pytest.mark.parametrize("estimator", ["weight-perturbation", "spsa"])
def test_perturbed_weights_train_in_the_memory_of_inference(memory, estimator):
    inference, step = memory.measure(estimator, copies=40, batch_size=64)
    assert 0 < inference and step <= memory.TARGET * inference, (estimator, inference, step)


def test_the_measurement_sees_the_copies_of_glr(memory):
    inference, step = memory.measure("glr", copies=40, batch_size=64)
    assert step > 5 * inference
