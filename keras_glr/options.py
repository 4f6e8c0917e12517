"""The estimator options, declared once: `EstimatorOptions`.

Every option `compile` takes beyond Keras's own is a field here, with its
metadata: `help` (one line, for `glr-train --help` and `compile`'s
docstring), `values` and `objective` (the docs' option table), `choices`, and
`estimators`, the estimators that use it (an option set away from its
default for another estimator is refused: it would have no effect).
`compile(**options)`, `RunConfig` and `glr-train`'s flags, the twins, the
docs' table and the checks all read this list, so a new option is one field.
The module needs only the standard library: the command line reads it
without loading TensorFlow.
"""

import dataclasses

ESTIMATORS = ("glr", "bp", "bp-noise", "bp-ste", "weight-perturbation", "spsa", "forward-gradient")
DIRECTIONS = ("gaussian", "rademacher")
BASELINES = ("loo", "none")
INJECTIONS = ("all", "layerwise")
SAMPLINGS = ("mc", "latin", "sobol")
SHAPINGS = ("none", "centred-ranks")
NOISY_ESTIMATORS = ("glr", "bp-noise", "bp-ste")  # the estimators that draw neuronal noise copies


def _option(default, help, values, objective="—", choices=None, estimators=ESTIMATORS):
    metadata = {"help": help, "values": values, "objective": objective, "estimators": estimators}
    if choices is not None:
        metadata["choices"] = choices
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class EstimatorOptions:
    """The options of the gradient estimator (`compile`'s keywords). Defaults: GLR as in the paper."""

    copies: int = _option(
        100,
        "K, noise copies per example in each step (weight-perturbation: K perturbed networks, "
        "K/2 antithetic pairs; spsa: K/2 directions, two passes each; forward-gradient: K random tangents; bp runs "
        "one copy whatever K says)",
        "100, any K >= 1",
    )
    baseline: str = _option(
        "loo",
        "loo subtracts from each copy's loss the mean of the other copies of the same example (with antithetic "
        "pairs, the partner is left out too); none subtracts nothing",
        '`"loo"`, `"none"`',
        "unchanged: the baseline does not depend on the copy's own noise",
        choices=BASELINES,
    )  # every estimator takes it: the BP controls subtract nothing, and "none" says so
    antithetic: bool = _option(
        False,
        "noise in pairs (r, -r); K even (K >= 4 with the loo baseline)",
        "`False`, `True`",
        "unchanged: each copy's marginal is the noise's",
        estimators=NOISY_ESTIMATORS,
    )
    estimator: str = _option(
        "glr",
        "glr; the BP controls: bp (backprop through the noiseless network), bp-noise (through the noisy "
        "network, reparameterised), bp-ste (through it with step/sign units passing the gradient straight through, "
        "the 0-1 loss replaced by cross-entropy for the gradient only); weight-perturbation (evolution "
        "strategies: antithetic Gaussian noise on every weight, the neurons noiseless); spsa (MeZO: a few random "
        "directions per step, two passes each, the weights perturbed in place: the memory of inference); or "
        "forward-gradient (random tangents pushed forward, (grad L . v) v, differentiable networks only)",
        '`"glr"`, `"bp"`, `"bp-noise"`, `"bp-ste"`, `"weight-perturbation"`, `"spsa"`, `"forward-gradient"`',
        '`"glr"`, `"bp-noise"`: d E[L] / d theta; `"bp"`, `"forward-gradient"`: the noiseless gradient; `"bp-ste"`: a '
        'surrogate, biased by design; `"weight-perturbation"`, `"spsa"`: see `perturbation_scale` and '
        "`spsa_directions`",
        choices=ESTIMATORS,
    )
    ste_slope: float = _option(
        None,
        "bp-ste surrogate: None passes the gradient through as the identity; s > 0 uses the derivative of sigmoid(s x)",
        "`None`, a float s > 0",
        estimators=("bp-ste",),
    )
    copies_per_chunk: int = _option(
        None,
        "bound on the example copies one forward pass runs: the batch runs in chunks of whole examples (all K "
        "copies each), the same estimate in less memory",
        "`None`, a positive int",
        "unchanged: the chunks read the noise of one pass, so the estimate equals the unchunked one",
    )
    injection: str = _option(
        "all",
        "layerwise splits each example's copies into one group per noisy layer; on its group only that layer is noisy",
        '`"all"`, `"layerwise"`',
        '`"all"`: d E[L] / d theta under every layer\'s noise; `"layerwise"`: for layer g, the gradient of E over '
        "r_g of L, the loss smoothed by that layer's noise alone, the other layers noiseless",
        choices=INJECTIONS,
        estimators=("glr",),
    )
    copies_per_layer: object = _option(
        None,
        "with layerwise injection, the group sizes in call order adding up to K; None splits evenly, "
        "proportional in proportion to each layer's noise values per example",
        '`None` (even split), `"proportional"`, a list of sizes',
        'as `"layerwise"`',
        estimators=("glr",),
    )
    perturbation_scale: float = _option(
        0.03,
        "weight-perturbation, spsa: sigma, the scale of the perturbation of every weight",
        "0.03, a float sigma > 0",
        "d E_e[L(theta + sigma e)] / d theta, e ~ N(0, I): the loss smoothed by weight noise of that scale "
        "(Gaussian directions)",
        estimators=("weight-perturbation", "spsa"),
    )
    spsa_directions: str = _option(
        "gaussian",
        "spsa: the random directions d, gaussian (MeZO) or rademacher (+-1 each, classic SPSA)",
        '`"gaussian"`, `"rademacher"`',
        '`"gaussian"`: as `perturbation_scale`; `"rademacher"`: d L / d theta up to O(sigma^2) (exactly, for a loss '
        "quadratic in the weights)",
        choices=DIRECTIONS,
        estimators=("spsa",),
    )
    fitness_shaping: str = _option(
        "none",
        "weight-perturbation: none weighs each perturbation by its batch losses; centred-ranks (OpenES) by their "
        "centred ranks among the step's K perturbed networks, from -0.5 (lowest loss) to 0.5 (highest)",
        '`"none"`, `"centred-ranks"`',
        '`"none"`: as `perturbation_scale`; `"centred-ranks"`: not the smoothed loss, and unchanged by any increasing '
        "transform of the loss: as K grows, the gradient of E_e[F(L(theta + sigma e))], F the perturbed losses' "
        "distribution function held fixed (IGO); for a loss linear in the weights, c_K / sigma times the gradient's "
        "direction",
        choices=SHAPINGS,
        estimators=("weight-perturbation",),
    )
    sampling: str = _option(
        "mc",
        "mc: independent copies; latin: each example's copies a Latin hypercube, coordinate by coordinate; "
        "sobol: the first K points of a randomised Sobol sequence (at most 21,201 noise values per call)",
        '`"mc"`, `"latin"`, `"sobol"`',
        "unchanged: every copy keeps the noise's distribution; both stratified "
        'schemes need `baseline="none"`, since their copies are not independent',
        choices=SAMPLINGS,
        estimators=("glr",),
    )

    def __post_init__(self):
        if isinstance(self.copies_per_layer, list):
            object.__setattr__(self, "copies_per_layer", tuple(self.copies_per_layer))

    def validate(self):
        """Raises ValueError naming the first bad option, what was received and what works."""
        _check_ste_slope(self.ste_slope)
        _check_copies(self.copies, self.copies_per_chunk)
        _check_perturbation(self.perturbation_scale, self.copies, self.estimator)
        for name in ("baseline", "estimator", "injection", "sampling", "spsa_directions", "fitness_shaping"):
            _choice(name, getattr(self, name), FIELDS[name].metadata["choices"])
        if not isinstance(self.antithetic, bool):
            raise ValueError(
                "Invalid value received for argument `antithetic`. Expected True or "
                f"False. Received: antithetic={self.antithetic!r}"
            )
        _check_glr_only(self.sampling, self.injection, self.estimator)
        self._check_used_by_the_estimator()
        _check_pairs_and_baseline(self.copies, self.baseline, self.antithetic, self.estimator)
        _check_sampling(self.sampling, self.baseline)
        _check_copies_per_layer(self.copies_per_layer, self.injection)
        _check_shaping(self.fitness_shaping, self.copies_per_chunk)
        return self

    def _check_used_by_the_estimator(self):
        for field in dataclasses.fields(self):
            value, users = getattr(self, field.name), field.metadata["estimators"]
            if self.estimator not in users and value != field.default:
                raise ValueError(
                    f"Invalid value received for argument `{field.name}`: it is an option of estimator="
                    f"{' or '.join(repr(e) for e in users)} and has no effect with estimator={self.estimator!r}. "
                    f"Received: {field.name}={value!r}. Drop it, or use estimator={users[0]!r}."
                )

    def reset_for(self, estimator):
        """These options for `estimator`: the options it does not use back at their defaults."""
        changes = {f.name: f.default for f in dataclasses.fields(self) if estimator not in f.metadata["estimators"]}
        return dataclasses.replace(self, estimator=estimator, **changes)


FIELDS = {field.name: field for field in dataclasses.fields(EstimatorOptions)}
NAMES = tuple(FIELDS)


def markdown_table():
    """The docs' option table: option, values (default first), what it does, the objective it is unbiased for."""
    rows = [
        "| option | values (default first) | what it does | the estimate is unbiased for |",
        "| --- | --- | --- | --- |",
    ]
    for name, field in FIELDS.items():
        meta = field.metadata
        rows.append(f"| `{name}` | {meta['values']} | {meta['help']} | {meta['objective']} |")
    return "\n".join(rows)


def _choice(name, value, options):
    if value not in options:
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected one of {list(options)}. Received: {name}={value!r}"
        )


def _check_ste_slope(ste_slope):
    if ste_slope is not None and (
        isinstance(ste_slope, bool) or not isinstance(ste_slope, (int, float)) or not ste_slope > 0
    ):
        raise ValueError(
            "Invalid value received for argument `ste_slope`. Expected None "
            f"(identity) or a float > 0. Received: ste_slope={ste_slope!r}"
        )


def _check_copies(copies, copies_per_chunk):
    if isinstance(copies, bool) or not isinstance(copies, int) or copies < 1:
        raise ValueError(
            "Invalid value received for argument `copies`. Expected a positive "
            f"integer (the number K of noise copies per example). Received: copies={copies!r}"
        )
    if copies_per_chunk is not None and (
        isinstance(copies_per_chunk, bool) or not isinstance(copies_per_chunk, int) or copies_per_chunk < 1
    ):
        raise ValueError(
            "Invalid value received for argument `copies_per_chunk`. Expected None or a "
            f"positive integer. Received: copies_per_chunk={copies_per_chunk!r}"
        )


def _check_perturbation(scale, copies, estimator):
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < float("inf"):
        raise ValueError(
            "Invalid value received for argument `perturbation_scale`. Expected a float sigma > 0. "
            f"Received: perturbation_scale={scale!r}"
        )
    if estimator in ("weight-perturbation", "spsa") and copies % 2:
        raise ValueError(
            f"The {estimator} estimator runs its copies as antithetic pairs (theta + sigma e, theta - sigma e), so "
            f"`copies` must be even. Received: copies={copies}. Use copies={copies + 1}."
        )


def _check_glr_only(sampling, injection, estimator):
    """The GLR-only schemes, refused for the BP controls with what they are."""
    if sampling != "mc" and estimator != "glr":
        scheme = {"latin": "Latin-hypercube", "sobol": "Randomised Sobol"}[sampling]
        raise ValueError(
            f"{scheme} sampling is an option of the GLR estimator; received estimator={estimator!r}. Use sampling='mc'."
        )
    if injection == "layerwise" and estimator != "glr":
        raise ValueError(
            "Layer-wise injection is a way to share the copies among the GLR estimates of the layers; "
            f"the {estimator!r} estimator has no per-layer estimates. Use injection='all'."
        )


def _check_pairs_and_baseline(copies, baseline, antithetic, estimator):
    if antithetic and copies % 2:
        raise ValueError(
            "Antithetic noise pairs each copy r with -r, so `copies` must be even. "
            f"Received: copies={copies}. Use copies={copies + 1}, or antithetic=False."
        )
    if estimator == "glr" and baseline == "loo":
        # The leave-one-out baseline must not depend on the copy's own noise: with antithetic pairs that excludes the
        # partner too.
        needed = 4 if antithetic else 2
        if copies < needed:
            what = "two antithetic pairs" if antithetic else "two copies"
            raise ValueError(
                f"The leave-one-out baseline needs at least {what} per example "
                f"(copies >= {needed}). Received: copies={copies}. Increase "
                "`copies`, or pass baseline='none'."
            )


def _check_sampling(sampling, baseline):
    if sampling == "mc":
        return
    scheme = {"latin": "Latin-hypercube", "sobol": "Randomised Sobol"}[sampling]
    if baseline == "loo":
        raise ValueError(
            f"{scheme} copies of an example are not independent of each other, so the leave-one-out "
            "baseline (the other copies' mean loss) would depend on the copy's own noise and bias the estimate. "
            f"Use baseline='none' with sampling={sampling!r} (the stratified copies centre the scores themselves), "
            "or sampling='mc'."
        )


def _check_copies_per_layer(copies_per_layer, injection):
    if copies_per_layer is None:
        return
    if injection != "layerwise":
        raise ValueError("`copies_per_layer` splits the copies among the layers, so it needs injection='layerwise'.")
    if copies_per_layer != "proportional" and (
        isinstance(copies_per_layer, (str, bytes))
        or not all(isinstance(k, int) and not isinstance(k, bool) and k > 0 for k in copies_per_layer)
    ):
        raise ValueError(
            "Invalid value received for argument `copies_per_layer`. Expected 'proportional' or a list of "
            f"positive integers, one per noisy layer. Received: copies_per_layer={copies_per_layer!r}"
        )


def _check_shaping(fitness_shaping, copies_per_chunk):
    if fitness_shaping == "centred-ranks" and copies_per_chunk is not None:
        raise ValueError(
            "Centred ranks rank the losses of the whole batch under each perturbation, so the batch cannot run in "
            f"chunks. Received: fitness_shaping='centred-ranks', copies_per_chunk={copies_per_chunk}. Drop "
            "`copies_per_chunk` (weight perturbation holds one perturbed network at a time, whatever K), or use "
            "fitness_shaping='none'."
        )
