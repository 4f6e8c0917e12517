"""Fair controls: the backprop twin of a GLR run.

A robustness claim for GLR is only worth something against a BP network
trained with the same neuronal noise, optimizer, learning rate, schedule,
epochs, batch size and seed (docs/guides/robustness.md, "Fair controls: train the twin").
The twin differs from its GLR run in the estimator alone:
    - "bp-ste" for step and sign units and for the 0-1 loss (backprop has no
      gradient there; the straight-through estimator, with cross-entropy in
      place of the 0-1 loss for the gradient, is the fair control),
    - "bp-noise" otherwise.
"""

import dataclasses

from keras_glr import options

STEP_LIKE = ("step", "threshold", "heaviside", "sign")


def twin_estimator(activation, loss="ce"):
    """The BP estimator that is the fair control for `activation` and `loss`.

    bp-ste for step-like units or the 0-1 loss (neither has a gradient),
    bp-noise otherwise.
    """
    return "bp-ste" if str(activation).lower() in STEP_LIKE or loss == "zero-one" else "bp-noise"


def twin_config(config):
    """Returns the twin of a GLR `RunConfig`: same everything, BP estimator (all layers noisy, independent copies).

    The estimator options the twin's estimator does not use (`options.EstimatorOptions`'s
    `estimators` metadata: layer-wise injection, stratified sampling, the baseline)
    go back to their defaults, and so does the run's copy split.

    Raises ValueError if `config` is not a GLR configuration.
    """
    if config.estimator != "glr":
        raise ValueError(
            f"A twin is the BP control of a GLR run; this run's estimator is "
            f"{config.estimator!r}. Pass the GLR run's directory."
        )
    run_name = f"{config.run_name}_twin" if config.run_name else None
    twin = config.estimator_options().reset_for(twin_estimator(config.activation, config.loss))
    kept = {name: getattr(twin, name) for name in options.NAMES if hasattr(config, name)}
    return dataclasses.replace(config, copy_split="even", run_name=run_name, **kept)
