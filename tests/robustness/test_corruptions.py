import numpy as np
import pytest

from keras_glr.data import mnist5k
from keras_glr.robustness import corruptions


@pytest.fixture(scope="module")
def digits():
    (x, _), _ = mnist5k.load_arrays()
    return x[:48].reshape(-1, 14, 2, 14, 2, 1).mean(axis=(2, 4))


def _distortion(clean, corrupted):
    return float(np.sqrt(np.mean((corrupted.astype(np.float64) - clean) ** 2)))


@pytest.mark.parametrize("name", corruptions.NAMES)
def test_shape_dtype_range_and_seed(name, digits):
    fn = corruptions.get(name)
    for severity in corruptions.SEVERITIES:
        out = fn(digits, severity, seed=1)
        assert out.shape == digits.shape and out.dtype == digits.dtype
        assert out.min() >= 0.0 and out.max() <= 1.0
        np.testing.assert_array_equal(out, fn(digits, severity, seed=1))
    assert np.any(fn(digits, 3, seed=1) != digits)


@pytest.mark.parametrize("name", [n for n in corruptions.NAMES if n != "glass_blur"])
def test_distortion_grows_with_severity(name, digits):
    fn = corruptions.get(name)
    distortion = [_distortion(digits, fn(digits, s, seed=0)) for s in corruptions.SEVERITIES]
    assert all(a < b for a, b in zip(distortion, distortion[1:])), distortion


def test_glass_blur_follows_the_papers_table(digits):
    """The authors' table is not monotone in sigma: two iterations distort more than one."""
    d = [_distortion(digits, corruptions.glass_blur(digits, s, seed=0)) for s in corruptions.SEVERITIES]
    assert d[3] > max(d[:3]) and d[4] > d[0]


def test_paper_parameters_are_used():
    assert corruptions.PARAMETERS["gaussian_noise"] == (0.04, 0.06, 0.08, 0.09, 0.10)
    assert corruptions.PARAMETERS["contrast"] == (0.75, 0.5, 0.4, 0.3, 0.15)
    x = np.full((2, 4, 4, 1), 0.5)
    x[:, 0, 0] = 1.0
    out = corruptions.contrast(x, 5)
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    np.testing.assert_allclose(out, (x - mean) * 0.15 + mean)


def test_bad_input():
    with pytest.raises(ValueError, match="shape \\(N, H, W, C\\)"):
        corruptions.gaussian_noise(np.zeros((3, 196)), 1)
    with pytest.raises(ValueError, match="Invalid severity: 6"):
        corruptions.gaussian_noise(np.zeros((1, 4, 4, 1)), 6)
    with pytest.raises(ValueError, match="Unknown corruption: 'snow'"):
        corruptions.parse_names("gaussian_noise,snow")
    assert corruptions.parse_names("paper") == corruptions.PAPER_NAMES
