"""benchmarks/peers.py: every estimator under its compile name, screened on seed 0, in one table."""

import pytest

from tests.benchmark_scripts import load


@pytest.fixture(scope="module")
def peers():
    return load("peers")


@pytest.mark.slow  # three trainings (20 s)
def test_a_row_per_estimator_with_its_screened_setting_and_the_refusals(peers):
    grid = ((0.03,), (0.03, 0.1))
    rows = [peers.row("step", estimator, (0,), 1, grid) for estimator in ("weight-perturbation", "forward-gradient")]
    es, forward = rows
    assert [setting for _, setting in es["screened"]] == [(0.03, 0.03), (0.03, 0.1)]
    assert es["setting"] == max(es["screened"])[1] and 0.0 <= es["test"][0] <= 1.0
    assert forward["refused"].startswith("The forward gradient differentiates the network")
    table = peers.table(rows).splitlines()
    assert table[0].startswith("| network | estimator |") and len(table) == 4
    assert table[2].startswith("| step | weight-perturbation | lr 0.03, sigma ") and "refused" in table[3]
