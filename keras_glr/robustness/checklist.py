"""The evaluation checklist of Carlini et al. (2019, "On evaluating adversarial robustness").

Attack numbers are upper bounds on robustness; these checks say whether the
white-box attack behind them worked as an attack should. On the examples
given, for one model:

    falls to chance  white-box PGD accuracy does not rise as eps grows, and at
                     the largest eps (0.5 on [0, 1] pixels: every image can be
                     turned into the same grey one) it is at most chance + 0.1;
    iterative        iterative PGD fools every example single-step FGSM fools,
                     but for at most `tolerance` of them;
    white-box        white-box PGD fools every example the transfer attack
                     fools, but for at most `tolerance` of them;
    converged        5 times the iterations with 3 random restarts (the restart
                     with the lowest margin per example) lowers accuracy by at
                     most `tolerance`, or two standard errors of the accuracy
                     on these examples when that is more.

A failed check is a flag on the model's row: its white-box numbers may be
too high because the attack, not the model, fell short.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from keras_glr.robustness import attacks
from keras_glr.robustness.attacks.spsa import margin

CHECKS = ("falls to chance", "iterative", "white-box", "converged")
SWEEP = (0.05, 0.1, 0.2, 0.3, 0.5)


@dataclasses.dataclass(frozen=True)
class Settings:
    eps: float = 0.1
    sweep: tuple = SWEEP
    steps: int = 20
    long_steps: int = 100
    restarts: int = 3
    tolerance: float = 0.05


def pgd(model_fn, x, y, eps, steps, seed=0):
    """L-inf PGD (`attacks.pgd`) seeded for its random start; returns numpy inputs."""
    tf.random.set_seed(seed)
    return np.asarray(attacks.pgd(model_fn, tf.constant(x), tf.constant(y), eps, steps=steps))


def fgsm(model_fn, x, y, eps):
    """FGSM inputs at L-inf radius `eps` crafted on `model_fn` (x -> logits), as numpy, shape of `x`."""
    return np.asarray(attacks.get("fgsm").run(model_fn, tf.constant(x), tf.constant(y), eps))


def run(attack_fn, correct, x, y, classes, transfer=None, settings=Settings(), seed=0):
    """Runs the attacks the checks need and evaluates the checks.

    Args:
        attack_fn: x -> logits that the gradient attacks differentiate (BPDA / EOT for GLR models).
        correct: x -> (N,) bool, whether the model classifies each input right.
        x: the examples (numpy).
        y: their integer labels.
        classes: C, for chance = 1 / C.
        transfer: optional transfer-attack inputs for the same examples (PGD at `settings.eps`).

    Returns:
        JSON-ready dict: "accuracy" per attack, "checks" {name: {"passed", "detail"}}, "flags" (failed names).
    """
    n = len(x)
    fooled = {}
    accuracy = {"clean": float(np.mean(correct(x)))}
    sweep = sorted(set(settings.sweep) | {settings.eps})
    for eps in sweep:
        fooled[f"pgd {eps}"] = ~correct(pgd(attack_fn, x, y, eps, settings.steps, seed))
        accuracy[f"pgd {eps}"] = 1.0 - float(np.mean(fooled[f"pgd {eps}"]))
    fooled["fgsm"] = ~correct(fgsm(attack_fn, x, y, settings.eps))
    # The restart with the lowest margin per example, judged once: with noisy
    # prediction, judging every restart would give the long attack extra draws.
    best, lowest = None, None
    for restart in range(settings.restarts):
        adversarial = pgd(attack_fn, x, y, settings.eps, settings.long_steps, seed + 1 + restart)
        margins = margin(np.asarray(attack_fn(adversarial)), y)
        if best is None:
            best, lowest = adversarial.copy(), margins
        else:
            lower = margins < lowest
            best[lower], lowest[lower] = adversarial[lower], margins[lower]
    long = ~correct(best)
    fooled["long"] = long
    accuracy["fgsm"] = 1.0 - float(np.mean(fooled["fgsm"]))
    accuracy["pgd long"] = 1.0 - float(np.mean(long))
    main = fooled[f"pgd {settings.eps}"]
    curve = [accuracy[f"pgd {eps}"] for eps in sweep]
    rises = max((later - earlier for earlier, later in zip(curve, curve[1:])), default=0.0)
    short = accuracy[f"pgd {settings.eps}"]
    noise = 2.0 * np.sqrt(max(short * (1.0 - short), 1.0 / n) / n)  # two standard errors of an accuracy on n examples
    checks = {
        "falls to chance": (
            rises <= settings.tolerance and curve[-1] <= 1.0 / classes + 0.1,
            "white-box PGD accuracy at eps "
            + ", ".join(f"{e}: {a:.2f}" for e, a in zip(sweep, curve))
            + f" (chance {1.0 / classes:.2f})",
        ),
        "iterative": _per_example(fooled["fgsm"], main, n, settings.tolerance, "FGSM", "PGD"),
        "converged": (
            short - accuracy["pgd long"] <= max(settings.tolerance, noise),
            f"PGD {settings.steps} steps: {accuracy[f'pgd {settings.eps}']:.2f}; {settings.long_steps} steps x "
            f"{settings.restarts} restarts: {accuracy['pgd long']:.2f}",
        ),
    }
    if transfer is not None:
        checks["white-box"] = _per_example(
            ~correct(transfer), main, n, settings.tolerance, "transfer PGD", "white-box PGD"
        )
    return {
        "examples": n,
        "eps": settings.eps,
        "accuracy": accuracy,
        "checks": {name: {"passed": bool(ok), "detail": detail} for name, (ok, detail) in checks.items()},
        "flags": [name for name in CHECKS if name in checks and not checks[name][0]],
    }


def _per_example(weaker, stronger, n, tolerance, weak_name, strong_name):
    missed = int(np.sum(weaker & ~stronger))
    return missed <= tolerance * n, f"{missed} of {n} examples fooled by {weak_name} but not by {strong_name}"


def flag_text(result):
    """Short text for a table cell: "ok" or the failed checks."""
    if not result:
        return "n/a"
    return "ok" if not result["flags"] else "FLAG: " + ", ".join(result["flags"])


def verdict(flagged):
    """What the checklist's flags mean for the white-box numbers, in one or two sentences.

    flagged: the names of the models (or rows) with a flag.
    """
    if flagged:
        return (
            f"Flagged: {', '.join(flagged)}. For these the white-box attack did not behave as a working attack "
            "should, so their white-box and query-attack numbers are loose upper bounds and the robustness they "
            "suggest is not established."
        )
    return (
        "No model failed a check: the white-box attack drives accuracy toward chance, beats the single-step and "
        "the transfer attack example by example, and has converged on every model, so its numbers are as tight "
        "as this attack can make them."
    )
