"""Statistical comparison of two Monte Carlo estimates, used by the tests."""

import numpy as np


def mean_and_se(samples):
    """Per-coordinate mean and standard error of i.i.d. samples (axis 0)."""
    samples = np.asarray(samples, dtype=np.float64)
    return samples.mean(axis=0), samples.std(axis=0, ddof=1) / np.sqrt(len(samples))


def z_scores(mean_a, se_a, mean_b, se_b):
    """(a - b) / sqrt(se_a^2 + se_b^2), elementwise."""
    return (np.asarray(mean_a) - mean_b) / np.sqrt(np.square(se_a) + np.square(se_b))


def assert_agree(mean_a, se_a, mean_b, se_b, n_se=4.0, what=""):
    """Fails unless every coordinate of a and b agrees within `n_se` SEs."""
    z = z_scores(mean_a, se_a, mean_b, se_b)
    worst = int(np.argmax(np.abs(z)))
    assert np.all(np.abs(z) < n_se), (
        f"{what}: estimates differ by {z.flat[worst]:.2f} standard errors at "
        f"coordinate {worst} ({np.asarray(mean_a).flat[worst]:.5f} vs "
        f"{np.asarray(mean_b).flat[worst]:.5f}); tolerance {n_se} SE. "
        f"{np.sum(np.abs(z) >= n_se)} of {z.size} coordinates out of tolerance."
    )
