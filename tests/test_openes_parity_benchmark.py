"""benchmarks/openes_parity.py: it exports glr-train's split for evosax, and evosax's absence is a clear error."""

import numpy as np
import pytest

from tests.benchmark_scripts import load


@pytest.fixture(scope="module")
def parity():
    return load("openes_parity")


def test_the_export_is_glr_trains_split(parity, tmp_path):
    from keras_glr import runs

    parity.export(str(tmp_path / "split.npz"))
    arrays = np.load(tmp_path / "split.npz")
    splits = runs.load_data(runs.RunConfig())
    first_x, first_y = next(iter(splits.test))
    np.testing.assert_array_equal(arrays["x_test"][: len(first_y)], first_x.numpy())
    np.testing.assert_array_equal(arrays["y_test"][: len(first_y)], first_y.numpy())
    assert arrays["x_train"].shape[1] == 196 and len(arrays["x_train"]) == len(arrays["y_train"])


def test_without_evosax_the_training_half_says_what_to_install(parity, tmp_path, capsys):
    try:
        import evosax  # noqa: F401

        pytest.skip("evosax is installed here")
    except ImportError:
        pass
    with pytest.raises(SystemExit):
        parity.main(["--data", str(tmp_path / "split.npz")])
    assert "pip install evosax" in capsys.readouterr().err
