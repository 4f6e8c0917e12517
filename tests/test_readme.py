"""The README's Python blocks run as written and do what the README says."""

import pathlib
import re

import numpy as np

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_the_python_example_trains_to_a_useful_accuracy(tmp_path, monkeypatch):
    (block,) = _python_blocks()
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - the README's own example
    model, x, y = namespace["model"], namespace["x"], namespace["y"]
    held_out = model.evaluate(x[3000:], y[3000:], verbose=0)[1]
    assert held_out > 0.8, f"the README example reaches only {held_out:.3f} on its validation digits"
    grads = namespace["grads"]
    assert len(grads) == len(model.trainable_variables) and all(np.all(np.isfinite(g)) for g in grads)
