"""The protocol of a reproduction: the paper's numbers, the rows, the suites, the settings and what is measured.

A suite is the networks one report compares: its rows (a training
configuration each, run for every seed), their BP twins, the transfer
surrogate, and the corruptions and radii measured. `Settings` choose a suite
and shrink it (`quick`); `row_configs` and `surrogate_config` turn them into
run configurations; `plans` says what is measured on every model.
"""

import dataclasses
import os

from keras_glr import options
from keras_glr._src import registry
from keras_glr._src.run_config import ARCH_DEFAULTS
from keras_glr._src.run_config import RunConfig
from keras_glr._src.twins import twin_config
from keras_glr.robustness import attacks
from keras_glr.robustness import corruptions
from keras_glr.robustness import evaluation
from keras_glr.robustness.evaluation import RADII

# The paper's setting (docs/guides/reproducing.md): 14x14 MNIST, 196-20-10, K = 10000, batch 25.
PAPER_TABLE_I = {  # clean, L-BFGS, FGSM
    "bp_sigmoid": (0.96, 0.57, 0.28),
    "glr_sigmoid": (0.94, 0.77, 0.45),
    "glr_threshold": (0.93, 0.73, 0.52),
    "glr_abs": (0.94, 0.78, 0.53),
    "glr_sigmoid_01": (0.84, 0.76, 0.58),
    "glr_threshold_01": (0.83, 0.72, 0.57),
}
PAPER_TABLE_II = {  # gaussian noise, impulse noise, glass blur, contrast
    "bp_sigmoid": (0.64, 0.40, 0.38, 0.25),
    "glr_sigmoid": (0.75, 0.51, 0.44, 0.45),
}
CORRUPTIONS = corruptions.PAPER_NAMES  # the paper's Table II
HEADLINE_EPS = 0.1
WORST_CASE_EPS = (0.05, 0.1)  # the worst-case ensemble's radii: the verdicts read these


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of the tables: a training configuration run for every seed."""

    key: str  # run-name stem, e.g. "glr_threshold"
    title: str  # e.g. "GLR threshold"
    overrides: dict
    epochs: float = 1.0  # share of `Settings.epochs` (2: the 0-1 loss, as in the paper; 0.25: fine-tuning)
    init_from: str = None  # key of the row whose run of the same seed this one starts from

    @property
    def trains_with_noise(self):
        """Whether the row's estimator draws noise on the neurons (then its noisy prediction is measured too)."""
        return self.overrides.get("estimator", "glr") in options.NOISY_ESTIMATORS

    def epochs_of(self, settings_epochs):
        """The epochs this row trains when the settings say `settings_epochs` (at least one)."""
        return max(1, round(self.epochs * settings_epochs))


@dataclasses.dataclass(frozen=True)
class Suite:
    """The networks one report compares, under the paper's protocol.

    base: `RunConfig` values shared by every row (its overrides come after);
    surrogate: those of the BP network the transfer attacks are crafted on,
    of a different architecture than the rows (the paper: two hidden layers
    where its rows have one); corruptions: the corruptions measured; paper:
    whether the paper's numbers stand beside ours; defaults: (quick, full)
    values of the `Settings` left at None; radii: those of the certificates
    (they scale with the noise); default_rows: the rows trained unless
    `Settings.rows` names others.
    """

    name: str
    title: str
    network: dict  # architecture -> words for the report
    rows: tuple
    base: dict
    surrogate: dict
    surrogate_words: str
    corruptions: tuple
    paper: bool
    defaults: dict
    radii: tuple = RADII  # input-space radii of the certified-accuracy columns
    default_rows: tuple = None  # the rows a run without `rows` trains (None: all)

    @property
    def row_keys(self):
        return tuple(row.key for row in self.rows)

    @property
    def flatten(self):
        """Whether the rows' network takes flat inputs (`registry`)."""
        return registry.get(self.base.get("arch", "mlp")).flat_inputs


_BP = {"estimator": "bp", "copies": 1, "baseline": "none"}
# (quick, full) `Settings` defaults every suite shares; each adds its copies, sigma and batch size.
_DEFAULTS = {
    "seeds": (1, 3),
    "epochs": (3, 12),
    "examples": (300, None),
    "whitebox_examples": (20, 100),
    "certify_examples": (100, 500),
    "certify_samples": (1000, 10_000),
}

ROWS = (
    Row("bp_sigmoid", "BP sigmoid", {**_BP, "activation": "sigmoid"}),
    Row("glr_sigmoid", "GLR sigmoid", {"activation": "sigmoid"}),
    Row("glr_threshold", "GLR threshold", {"activation": "step"}),
    Row("glr_abs", "GLR |x|", {"activation": "abs"}),
    Row("glr_sigmoid_01", "GLR sigmoid, 0-1 loss", {"activation": "sigmoid", "loss": "zero-one"}, epochs=2),
    Row("glr_threshold_01", "GLR threshold, 0-1 loss", {"activation": "step", "loss": "zero-one"}, epochs=2),
    Row("glr_sigmoid_laplace", "GLR sigmoid, Laplace noise", {"activation": "sigmoid", "noise": "laplace"}),
)
ROW_KEYS = tuple(row.key for row in ROWS)
#: The backprop-free peers of `benchmarks/peers.py` at the suite's copies (equal forward passes), each at the sigma
#: that trained best there; without twins (their neurons are noiseless). Asked for by `--rows` or `--rows all`.
PEER_ROWS = (
    Row(
        "es_sigmoid",
        "Weight perturbation sigmoid",
        {"activation": "sigmoid", "estimator": "weight-perturbation", "perturbation_scale": 0.3},
    ),
    Row(
        "es_threshold",
        "Weight perturbation threshold",
        {"activation": "step", "estimator": "weight-perturbation", "perturbation_scale": 0.3},
    ),
    Row("fg_sigmoid", "Forward gradient sigmoid", {"activation": "sigmoid", "estimator": "forward-gradient"}),
)

_MLP_SUITE = Suite(
    name="mlp",
    title="Reproduction of the paper's Tables I and II",
    network={"mlp": "196-20-10 for every row"},
    rows=ROWS + PEER_ROWS,
    base={"arch": "mlp", "hidden": (20,)},
    surrogate={"arch": "mlp", "hidden": (50, 50), "run_name": "surrogate_bp_50-50_relu"},
    surrogate_words="a BP 196-50-50-10 ReLU surrogate (as in the paper)",
    corruptions=corruptions.PAPER_NAMES,
    paper=True,
    defaults={**_DEFAULTS, "copies": (50, 300), "sigma": (2.0, 2.0), "batch_size": (25, 25)},
    default_rows=ROW_KEYS,  # the paper's rows; the peers on request
)

_CNN = ARCH_DEFAULTS["cnn"]
CNN_ROWS = (
    Row("bp_cnn", "BP ReLU CNN", {**_BP, "activation": "relu"}),
    Row("glr_cnn", "GLR ReLU CNN", {"activation": "relu"}),
    Row(
        "glr_cnn_step", "GLR step CNN, fine-tuned from BP ReLU", {"activation": "step"}, epochs=0.25, init_from="bp_cnn"
    ),
    # The residual CNN at its own `--arch resnet` defaults (its K and copy split).
    Row("bp_resnet", "BP ReLU resnet", {**_BP, "arch": "resnet", "activation": "relu"}),
    Row(
        "glr_resnet",
        "GLR ReLU resnet",
        {
            "arch": "resnet",
            "activation": "relu",
            "copies": ARCH_DEFAULTS["resnet"]["copies"],
            "copy_split": ARCH_DEFAULTS["resnet"]["copy_split"],
        },
    ),
)

_CNN_SUITE = Suite(
    name="cnn",
    title="The paper's protocol on the small CNN",
    network={
        "cnn": "the small CNN of `glr-train --arch cnn` (conv 3x3, 8 filters, 2x2 max-pool; conv 3x3, 16 filters, 2x2 "
        "max-pool; dense logits; each conv pools its pre-activation before the noise)",
        "resnet": "the residual CNN of `glr-train --arch resnet` (a stem of 8 filters, one residual block of 16 that "
        "halves the resolution, every conv and batch normalization noisy)",
    },
    rows=CNN_ROWS,
    base={"arch": "cnn"},
    surrogate={"arch": "cnn", "filters": (16, 32, 32), "pool": "output", "run_name": "surrogate_bp_cnn-16-32-32_relu"},
    surrogate_words="a BP ReLU CNN of three conv layers (16, 32 and 32 filters, each max-pooled) where the rows have "
    "two",
    corruptions=corruptions.NAMES,
    paper=False,
    defaults={**_DEFAULTS, "copies": (_CNN["copies"],) * 2, "sigma": (_CNN["sigma"],) * 2, "batch_size": (32, 32)},
    radii=(0.0, 0.01, 0.02, 0.03, 0.05, 0.1),  # sigma = 0.05: radii a tenth of the MLP's (sigma = 2)
    default_rows=("bp_cnn", "glr_cnn", "glr_cnn_step"),  # the resnet rows more than double the run's time: ask for them
)

SUITES = {suite.name: suite for suite in (_MLP_SUITE, _CNN_SUITE)}


@dataclasses.dataclass
class Settings:
    """What a reproduction trains and measures. `quick` shrinks everything.

    suite: "mlp" (the paper's 196-20-10 network and rows) or "cnn" (the small
    CNN with ReLU units, its step-unit fine-tuning and plain BP). The paper
    trains with K = 10000 copies and plain SGD for 12 epochs (24 with the
    0-1 loss); on 2 CPU cores that is hours per row, so the default uses
    fewer copies and Adam, which reaches the paper's clean accuracy range in
    the same epochs. Settings left at None take the suite's defaults
    (`Suite.defaults`). Every setting is written into the report.
    """

    quick: bool = False
    suite: str = "mlp"
    dataset: str = "mnist5k"
    data_dir: str = None
    seeds: int = None
    rows: tuple = None  # row keys (None: the suite's default rows)
    twins: bool = True
    copies: int = None
    epochs: int = None
    sigma: float = None  # mlp: the paper's sigma^2 = 4
    optimizer: str = "adam"
    learning_rate: float = 0.01
    batch_size: int = None
    examples: int = None  # test examples measured (None: all)
    whitebox_examples: int = None
    eps: tuple = (0.05, 0.1, 0.2)
    noisy_passes: int = 32
    certify_examples: int = None  # test examples certified per model
    certify_samples: int = None  # noisy draws per certified example
    alpha: float = 0.001

    def __post_init__(self):
        if self.suite not in SUITES:
            raise ValueError(f"Unknown suite {self.suite!r}. Expected one of {list(SUITES)}.")
        suite = SUITES[self.suite]
        for name, (quick, full) in suite.defaults.items():
            if getattr(self, name) is None:
                setattr(self, name, quick if self.quick else full)
        self.rows = (suite.default_rows or suite.row_keys) if self.rows is None else tuple(self.rows)
        unknown = [key for key in self.rows if key not in suite.row_keys]
        if unknown:
            raise ValueError(
                f"Unknown rows {unknown} for the {self.suite} suite. Expected some of {list(suite.row_keys)}."
            )
        for name in (
            "seeds",
            "copies",
            "epochs",
            "whitebox_examples",
            "noisy_passes",
            "batch_size",
            "certify_examples",
            "certify_samples",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Invalid {name}: {value!r}. Expected a positive integer.")
        if self.examples is not None and (not isinstance(self.examples, int) or self.examples < 1):
            raise ValueError(f"Invalid examples: {self.examples!r}. Expected a positive integer or None (all).")

    @property
    def suite_spec(self):
        """The `Suite` these settings measure."""
        return SUITES[self.suite]

    def to_json(self):
        return {**dataclasses.asdict(self), "rows": list(self.rows), "eps": list(self.eps)}


def surrogate_config(settings):
    """The BP network the transfer attacks are crafted on (`Suite.surrogate`), ReLU units."""
    epochs = max(settings.epochs, 10) if not settings.quick else settings.epochs
    return RunConfig.for_arch(
        **settings.suite_spec.surrogate,
        dataset=settings.dataset,
        data_dir=settings.data_dir,
        activation="relu",
        **_BP,
        optimizer="adam",
        learning_rate=0.01,
        epochs=epochs,
        batch_size=32,
        seed=0,
    )


def row_configs(settings, root=""):
    """[(row, twin of (row or None), RunConfig)] for every selected row, seed and twin.

    A row with `init_from` starts from its base row's run of the same seed
    under `root` (the folder the runs are trained in), and so does its twin;
    the base row comes first in the suite.
    """
    out = []
    for row in settings.suite_spec.rows:
        if row.key not in settings.rows:
            continue
        for seed in range(settings.seeds):
            values = dict(
                settings.suite_spec.base,
                dataset=settings.dataset,
                data_dir=settings.data_dir,
                sigma=settings.sigma,
                copies=settings.copies,
                optimizer=settings.optimizer,
                learning_rate=settings.learning_rate,
                batch_size=settings.batch_size,
                epochs=row.epochs_of(settings.epochs),
                seed=seed,
                noisy_passes=settings.noisy_passes,
            )
            values.update(row.overrides)
            if row.init_from:
                values["init_from"] = os.path.join(root, f"{row.init_from}_seed{seed}")
            config = RunConfig.for_arch(**values, run_name=f"{row.key}_seed{seed}")
            out.append((row, None, config))
            if settings.twins and config.estimator == "glr":
                twin = twin_config(config)
                out.append((row, row, dataclasses.replace(twin, run_name=f"{row.key}_twin_seed{seed}")))
    return out


@dataclasses.dataclass(frozen=True)
class Plans:
    """What is measured on every model (`evaluation.Plan`s).

    transfer: attacks crafted once on the surrogate, at every eps, and the
    corruptions, on all test examples (the paper's protocol); whitebox:
    attacks on each model itself at the headline eps, with the checklist, on
    the first `whitebox_examples`; worst_case: the ensemble
    (`attacks.ENSEMBLE`) on each model itself at `WORST_CASE_EPS`, on the same
    examples, with the accuracy on the examples that survive every member;
    certify: randomized-smoothing certificates on the first
    `certify_examples`.
    """

    transfer: evaluation.Plan
    whitebox: evaluation.Plan
    worst_case: evaluation.Plan
    certify: evaluation.Plan

    def key(self, plan, name):
        """Where `name`'s results of `plan` are stored: "pgd-whitebox" for a white-box attack also run as transfer."""
        return f"{name}-whitebox" if plan is self.whitebox and name in self.transfer.attacks else name

    def version(self):
        """What the plans measure, in words: a cached evaluation of other plans is measured again."""
        worst = f"{','.join(self.worst_case.attacks)} at {','.join(map(str, self.worst_case.eps))}"
        return (
            f"transfer {','.join(self.transfer.attacks)} + corruptions; white-box {','.join(self.whitebox.attacks)}"
            f"{', checklist' if self.whitebox.checklist else ''}; {worst}; certificates"
        )

    def white_box(self):
        """The plans run on each model itself, on the first `whitebox_examples`."""
        return (self.whitebox, self.worst_case)


def plans(settings):
    """The `Plans` of a reproduction with `settings`."""
    return Plans(
        transfer=evaluation.Plan(
            attacks=("fgsm", "pgd", "lbfgs"),
            eps=tuple(settings.eps),
            corruptions=settings.suite_spec.corruptions,
            mode="transfer",
        ),
        whitebox=evaluation.Plan(
            attacks=("pgd", "spsa", "square"), eps=(HEADLINE_EPS,), corruptions=(), mode="whitebox", checklist=True
        ),
        worst_case=evaluation.Plan(
            attacks=attacks.parse_names("ensemble"), eps=WORST_CASE_EPS, corruptions=(), mode="whitebox"
        ),
        certify=evaluation.Plan(
            attacks=(),
            corruptions=(),
            mode="whitebox",
            certify=True,
            certify_samples=settings.certify_samples,
            alpha=settings.alpha,
            radii=settings.suite_spec.radii,
        ),
    )
