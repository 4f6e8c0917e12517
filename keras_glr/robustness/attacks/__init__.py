"""Adversarial attacks with one signature: `attack(model_fn, x, y, eps)`.

`model_fn` is any callable returning logits. FGSM, PGD (L-inf and L2) and the
basic and momentum iterative methods come from cleverhans 4; Carlini-Wagner
L2 is `carlini_wagner.py` (cleverhans' fails under Keras 3); L-BFGS is `lbfgs.py`; SPSA is `spsa.py` (batched over
examples;
cleverhans' SPSA does not construct its optimizer under Keras 3); Square
Attack (L-inf and L2) is `square.py`. Minimum-norm attacks (L-BFGS, CW) take
no epsilon: they are marked `uses_eps=False` and run once per model.
"""

import dataclasses

import numpy as np

from keras_glr.robustness.attacks.carlini_wagner import carlini_wagner_l2
from keras_glr.robustness.attacks.lbfgs import lbfgs
from keras_glr.robustness.attacks.spsa import margin as spsa_margin
from keras_glr.robustness.attacks.spsa import spsa
from keras_glr.robustness.attacks.square import square
from keras_glr.robustness.attacks.surrogate_gradients import bpda_model_fn
from keras_glr.robustness.attacks.surrogate_gradients import eot_model_fn
from keras_glr.robustness.attacks.surrogate_gradients import has_noisy_prediction
from keras_glr.robustness.corruptions import image_shape_for


@dataclasses.dataclass(frozen=True)
class Attack:
    """An attack by name: `run(model_fn, x, y, eps)` returns adversarial inputs; `uses_eps=False` for minimum-norm
    attacks."""

    name: str
    description: str
    uses_eps: bool
    run: object  # (model_fn, x, y, eps) -> x_adv
    queries_only: bool = False  # never asks for a gradient
    title: str = None  # how reports name it, e.g. "L-BFGS"; the name in capitals if None

    def __post_init__(self):
        if self.title is None:
            object.__setattr__(self, "title", self.name.upper())


def _fgsm(model_fn, x, y, eps):
    from cleverhans.tf2.attacks.fast_gradient_method import fast_gradient_method

    return fast_gradient_method(model_fn, x, eps, np.inf, clip_min=0.0, clip_max=1.0, y=y)


def pgd(model_fn, x, y, eps, norm=np.inf, steps=20):
    """Projected gradient descent (cleverhans) from a random start, `steps` steps of 2.5 eps / steps."""
    from cleverhans.tf2.attacks.projected_gradient_descent import projected_gradient_descent

    return projected_gradient_descent(
        model_fn,
        x,
        eps,
        eps_iter=2.5 * eps / steps,
        nb_iter=steps,
        norm=norm,
        clip_min=0.0,
        clip_max=1.0,
        y=y,
        rand_init=True,
        sanity_checks=False,
    )


def _pgd(norm):
    return lambda model_fn, x, y, eps: pgd(model_fn, x, y, eps, norm)


def _bim(model_fn, x, y, eps):
    from cleverhans.tf2.attacks.basic_iterative_method import basic_iterative_method

    return basic_iterative_method(
        model_fn, x, eps, eps / 8, 20, np.inf, clip_min=0.0, clip_max=1.0, y=y, sanity_checks=False
    )


def _mim(model_fn, x, y, eps):
    from cleverhans.tf2.attacks.momentum_iterative_method import momentum_iterative_method

    return momentum_iterative_method(
        model_fn, x, eps, eps / 8, 20, np.inf, clip_min=0.0, clip_max=1.0, y=y, sanity_checks=False
    )


def _cw(model_fn, x, y, eps):
    return carlini_wagner_l2(model_fn, np.asarray(x), y=np.asarray(y), max_iterations=100, binary_search_steps=6)


def _spsa(model_fn, x, y, eps):
    return spsa(model_fn, np.asarray(x), np.asarray(y), eps, steps=20, samples=64)


def _square(norm):
    def run(model_fn, x, y, eps):
        x = np.asarray(x)
        return square(
            model_fn, x, np.asarray(y), eps, norm=norm, queries=1000, image_shape=image_shape_for(x.shape[1:])
        )

    return run


def _lbfgs(model_fn, x, y, eps):
    return lbfgs(model_fn, np.asarray(x), y=np.asarray(y))


ATTACKS = {
    a.name: a
    for a in (
        Attack("fgsm", "fast gradient sign method, L-inf", True, _fgsm),
        Attack("pgd", "projected gradient descent, L-inf, 20 steps", True, _pgd(np.inf)),
        Attack(
            "pgd-l2", "projected gradient descent, L2 (eps is an L2 radius), 20 steps", True, _pgd(2), title="PGD L2"
        ),
        Attack("bim", "basic iterative method, L-inf, 20 steps", True, _bim),
        Attack("mim", "momentum iterative method, L-inf, 20 steps", True, _mim),
        Attack("cw", "Carlini-Wagner L2, minimum norm", False, _cw),
        Attack("spsa", "SPSA, gradient-free, L-inf, 20 steps of 64 queries", True, _spsa, queries_only=True),
        Attack(
            "square",
            "Square Attack, random search, L-inf, 1000 queries",
            True,
            _square(np.inf),
            queries_only=True,
            title="Square",
        ),
        Attack(
            "square-l2",
            "Square Attack, random search, L2 (eps is an L2 radius), 1000 queries",
            True,
            _square(2),
            queries_only=True,
            title="Square L2",
        ),
        Attack("lbfgs", "L-BFGS (Szegedy et al. 2014), minimum norm", False, _lbfgs, title="L-BFGS"),
    )
}
NAMES = tuple(ATTACKS)


def get(name):
    """The `Attack` called `name` (one of `NAMES`). Raises ValueError for an unknown name."""
    if name not in ATTACKS:
        raise ValueError(f"Unknown attack: {name!r}. Expected one of {list(NAMES)}.")
    return ATTACKS[name]


def parse_names(text):
    """Parses a comma-separated list ("all" for every attack)."""
    if text in (None, "", "none"):
        return ()
    names = NAMES if text == "all" else tuple(p.strip() for p in text.split(",") if p.strip())
    for name in names:
        get(name)
    return names


def parse_eps(text, flag="--eps"):
    """Parses "0.05,0.1" into epsilons (or radii); negative or non-numeric values are errors."""
    try:
        values = tuple(float(p) for p in str(text).split(",") if p.strip())
    except ValueError:
        raise ValueError(f"Invalid {flag} {text!r}: expected numbers separated by commas, e.g. 0.05,0.1,0.2.") from None
    if not values or any(not np.isfinite(v) or v < 0 for v in values):
        raise ValueError(f"Invalid {flag} {text!r}: every value must be a finite number >= 0.")
    return values


__all__ = [
    "ATTACKS",
    "Attack",
    "NAMES",
    "bpda_model_fn",
    "carlini_wagner_l2",
    "eot_model_fn",
    "get",
    "has_noisy_prediction",
    "lbfgs",
    "parse_eps",
    "pgd",
    "spsa",
    "spsa_margin",
    "square",
    "parse_names",
]
