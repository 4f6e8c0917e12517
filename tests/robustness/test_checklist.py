"""The checklist passes a working white-box attack and flags a masked one."""

import numpy as np
import tensorflow as tf

from keras_glr.robustness import checklist
from tests.robustness.test_attacks import bp_mlp  # noqa: F401  (fixture)

SMALL = checklist.Settings(eps=0.1, sweep=(0.1, 0.3, 0.5), steps=10, long_steps=20, restarts=2)


def _correct(model, y):
    return lambda t: model.predict_on_batch(np.asarray(t)).argmax(axis=1) == y


def test_a_working_attack_passes_and_a_masked_gradient_is_flagged(bp_mlp):  # noqa: F811
    model, x, y = bp_mlp
    transfer = np.clip(x + 0.1 * np.sign(np.random.default_rng(0).normal(size=x.shape)), 0, 1).astype("float32")
    good = checklist.run(lambda t: model(t), _correct(model, y), x, y, 10, transfer, SMALL)
    assert good["flags"] == [], good["checks"]
    assert good["accuracy"]["pgd 0.5"] <= 0.2 and set(good["checks"]) == set(checklist.CHECKS)
    masked_fn = lambda t: 0.0 * model(t) + tf.stop_gradient(model(t))  # noqa: E731  (a zero gradient, as a step has)
    masked = checklist.run(masked_fn, _correct(model, y), x, y, 10, transfer, SMALL)
    assert "falls to chance" in masked["flags"], masked["checks"]
    assert checklist.flag_text(masked).startswith("FLAG: falls to chance")


def test_per_example_checks_count_what_the_stronger_attack_missed():
    weaker = np.array([True, True, False, True])
    stronger = np.array([True, False, False, True])
    assert checklist._per_example(weaker, stronger, 4, 0.0, "a", "b") == (
        False,
        "1 of 4 examples fooled by a but not by b",
    )
    assert checklist._per_example(weaker, stronger, 4, 0.25, "a", "b")[0]
