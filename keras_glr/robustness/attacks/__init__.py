"""Adversarial attacks with one signature: `attack(model_fn, x, y, eps)`.

`model_fn` is any callable returning logits. FGSM, PGD (L-inf and L2) and the
basic and momentum iterative methods come from cleverhans 4; the others are
written here: Carlini-Wagner L2 (`carlini_wagner.py`: cleverhans' fails under
Keras 3), L-BFGS (`lbfgs.py`), SPSA (`spsa.py`, batched over examples),
Square Attack (`square.py`, L-inf and L2), APGD with the cross-entropy and
the DLR loss (`apgd.py`) and HopSkipJump (`hop_skip_jump.py`, decisions
only). Minimum-norm attacks (L-BFGS, CW) take no epsilon: they are marked
`uses_eps=False` and run once per model. `ensemble` is the worst case per
example over `ENSEMBLE`: an example survives it only if it survives each.
"""

import dataclasses

import numpy as np

from keras_glr.robustness.attacks.apgd import apgd
from keras_glr.robustness.attacks.carlini_wagner import carlini_wagner_l2
from keras_glr.robustness.attacks.hop_skip_jump import hop_skip_jump
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
    members: tuple = ()  # an ensemble's attacks: the worst case per example over them (`run` is None)

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


def _square_windows(shape):
    """The image Square Attack places its windows in: the input's image shape, or a row of pixels for other vectors."""
    try:
        return image_shape_for(shape)
    except ValueError:
        return (1, int(np.prod(shape)), 1)


def _square(norm):
    def run(model_fn, x, y, eps):
        x = np.asarray(x)
        return square(
            model_fn, x, np.asarray(y), eps, norm=norm, queries=1000, image_shape=image_shape_for(x.shape[1:])
        )

    return run


def _apgd(loss):
    def run(model_fn, x, y, eps):
        return apgd(model_fn, np.asarray(x), np.asarray(y), eps, loss=loss, steps=100, restarts=3)

    return run


def _hop_skip_jump(model_fn, x, y, eps):
    return hop_skip_jump(model_fn, np.asarray(x), np.asarray(y), eps)


def _square_long(model_fn, x, y, eps):
    x = np.asarray(x)
    return square(model_fn, x, np.asarray(y), eps, norm=np.inf, queries=5000, image_shape=_square_windows(x.shape[1:]))


#: The worst-case ensemble (`--attacks ensemble`), after AutoAttack's version for randomized defenses: APGD with
#: two losses (gradients through BPDA at several slopes for step units, EOT for noisy prediction), Square Attack
#: with AutoAttack's 5000 queries, and HopSkipJump, which reads decisions only.
ENSEMBLE = ("apgd-ce", "apgd-dlr", "square-5000", "hop-skip-jump")


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
        Attack(
            "apgd-ce",
            "APGD (Croce & Hein 2020), cross-entropy, L-inf, 3 restarts of 100 steps",
            True,
            _apgd("ce"),
            title="APGD-CE",
        ),
        Attack(
            "apgd-dlr",
            "APGD, difference-of-logits-ratio loss, L-inf, 3 restarts of 100 steps",
            True,
            _apgd("dlr"),
            title="APGD-DLR",
        ),
        Attack(
            "square-5000",
            "Square Attack, random search, L-inf, 5000 queries",
            True,
            _square_long,
            queries_only=True,
            title="Square 5000",
        ),
        Attack(
            "hop-skip-jump",
            "HopSkipJump (Chen et al. 2020), decisions only, L-inf",
            True,
            _hop_skip_jump,
            queries_only=True,
            title="HopSkipJump",
        ),
        Attack(
            "ensemble",
            "the worst case per example over " + ", ".join(ENSEMBLE),
            True,
            None,
            title="worst case",
            members=ENSEMBLE,
        ),
    )
}
NAMES = tuple(ATTACKS)


def get(name):
    """The `Attack` called `name` (one of `NAMES`). Raises ValueError for an unknown name."""
    if name not in ATTACKS:
        raise ValueError(f"Unknown attack: {name!r}. Expected one of {list(NAMES)}.")
    return ATTACKS[name]


def parse_names(text):
    """Parses a comma-separated list ("all" for every attack); an ensemble brings its members, before it."""
    if text in (None, "", "none"):
        return ()
    names = NAMES if text == "all" else tuple(p.strip() for p in text.split(",") if p.strip())
    ordered = []
    for name in names:
        for member in get(name).members + (name,):
            if member not in ordered:
                ordered.append(member)
    return tuple(ordered)


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
    "ENSEMBLE",
    "NAMES",
    "apgd",
    "hop_skip_jump",
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
