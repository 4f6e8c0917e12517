"""benchmarks/peers.py: every estimator under its compile name, screened on seed 0, in one table; the quality part."""

import numpy as np
import pytest

from tests.benchmark_scripts import load


@pytest.fixture(scope="module")
def peers():
    return load("peers")


@pytest.mark.slow  # five trainings (25 s)
def test_a_row_per_estimator_with_its_screened_setting_curves_and_the_refusals(peers):
    grid = ((0.03,), (0.03, 0.1))
    rows = peers.network_rows("step", (0,), 1, grid, ("glr", "weight-perturbation", "spsa", "forward-gradient"))
    glr, es, spsa, forward = rows
    assert [setting for _, setting in es["screened"]] == [(0.03, 0.03), (0.03, 0.1)]
    assert es["setting"] == max(es["screened"])[1] and 0.0 <= es["test"][0] <= 1.0
    assert spsa["setting"] == es["setting"] and "screened" not in spsa  # the same objective: weight perturbation's
    assert forward["refused"].startswith("The forward gradient differentiates the network")
    assert len(glr["curves"][0]) == 1 and glr["curves"][0][0][1] == glr["test"][0]
    table = peers.table(rows).splitlines()
    assert table[0].startswith("| network | estimator |") and len(table) == 7
    assert table[3].startswith("| step | weight-perturbation | lr 0.03, sigma ") and "refused" in table[5]
    assert "equal time" in table[6]


def test_equal_time_and_target_read_the_curves(peers):
    curve = [(1.0, 0.5), (2.0, 0.7), (3.0, 0.8)]
    assert peers.accuracy_by(curve, 2.5) == 0.7 and peers.accuracy_by(curve, 0.5) is None
    assert peers.time_to(curve, 0.7) == 2.0 and peers.time_to(curve, 0.9) is None
    rows = [
        {"network": "n", "estimator": "glr", "test": [0.8], "seconds": 3.0, "curves": [curve]},
        {"network": "n", "estimator": "weight-perturbation", "test": [0.6], "seconds": 6.0, "curves": [curve]},
        {"network": "n", "estimator": "bp", "test": [0.5], "seconds": 1.0, "curves": [curve]},
    ]
    assert peers.budgets(rows) == (3.0, 0.6)  # bp is the reference, not a peer


def test_the_quality_part_scores_each_estimator_against_its_own_objective(peers):
    model, x, y = peers._quality_model(8)
    references = peers.exact_gradients(model, x, y, 0.03, np.random.default_rng(0), draws=40, noisy_copies=200)
    results = peers.quality(model, x, y, references, ("glr", "forward-gradient"), (10, 1000), 2)
    glr, forward = results["glr"], results["forward-gradient"]
    assert glr[1][1] > glr[0][1] and glr[1][1] > 0.9  # more copies, a closer estimate
    assert -1.0 <= forward[0][1] <= 1.0
    assert peers.cosine(references["forward-gradient"], references["forward-gradient"]) == pytest.approx(1.0)
