"""A training run's configuration: its fields, their checks, its name, its parts.

`RunConfig` is the single list of what defines a run. Each field carries its
command-line help and group in `metadata`, so `glr-train` builds its options
from this list. The networks' own rules (their options, defaults and run
names) are their records in `registry`; the Keras objects a configuration
describes are built by `keras_glr._src.build`. Standard library only: the
command line reads it without loading TensorFlow.
"""

import dataclasses
import math
import os

import keras_glr.options as options
from keras_glr._src import registry
from keras_glr._src.json_files import DamagedFileError
from keras_glr._src.json_files import read_json
from keras_glr._src.registry import CELLS
from keras_glr._src.registry import CNN_POOLS
from keras_glr._src.registry import ENCODINGS
from keras_glr.options import BASELINES  # noqa: F401  (the estimator's names, declared once in `options`)
from keras_glr.options import ESTIMATORS  # noqa: F401
from keras_glr.options import INJECTIONS  # noqa: F401
from keras_glr.options import SAMPLINGS  # noqa: F401

LOSSES = ("ce", "zero-one")
NOISES = ("gaussian", "laplace")
ARCHITECTURES = tuple(registry.ARCHITECTURES)
MAX_NAME_BYTES = (
    200  # a run's name; its lock file `.<name>.lock` and journal `.<name>.commit.json` must fit in 255 bytes
)
OPTIMIZERS = ("sgd", "adam", "rmsprop", "momentum")
SCHEDULES = ("constant", "cosine", "step")
#: The settings each network trains with where the paper's network's differ (`registry`).
ARCH_DEFAULTS = {name: record.defaults for name, record in registry.ARCHITECTURES.items()}
_GLR_ONLY = ("copies", "antithetic", "injection", "copy_split")  # defaults of the estimator, not of the network


def parse_hidden(text, what="hidden layer widths", example="'20' or '50,50'"):
    """Parses "20" or "50,50" into a tuple of layer widths. Raises ValueError."""
    try:
        widths = tuple(int(part) for part in str(text).split(",") if part.strip() != "")
    except ValueError:
        widths = ()
    if not widths or any(w < 1 for w in widths):
        raise ValueError(f"Invalid {what}: {text!r}. Expected positive integers separated by commas, e.g. {example}.")
    return widths


def parse_filters(text):
    """Parses "8,16" into the CNN's conv widths. Raises ValueError."""
    return parse_hidden(text, "filters", "'8,16' or '32,64'")


COPY_SPLITS = ("even", "proportional")


def parse_copy_split(text):
    """Parses "even", "proportional" or shares such as "1,2,4" (a tuple of positive numbers). Raises ValueError."""
    if isinstance(text, (tuple, list)):
        shares = tuple(text)
    elif str(text).strip() in COPY_SPLITS:
        return str(text).strip()
    else:
        try:
            shares = tuple(float(part) for part in str(text).split(","))
        except ValueError:
            shares = ()
    if not shares or any(
        isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) or s <= 0 for s in shares
    ):
        raise ValueError(
            f"Invalid copy split: {text!r}. Expected 'even', 'proportional', or one positive share per noisy "
            "layer separated by commas, e.g. '1,2,4'."
        )
    return tuple(int(s) if float(s).is_integer() else float(s) for s in shares)


def _option(default, group, help, **command_line):
    """A field with its command-line help; `command_line` may hold choices, parse, flag, alias, metavar."""
    return dataclasses.field(default=default, metadata={"group": group, "help": help, **command_line})


def options_field(name, help=None):
    """The field of estimator option `name`: default, help and choices from `options.EstimatorOptions`."""
    meta = options.FIELDS[name].metadata
    extra = {"choices": meta["choices"]} if "choices" in meta else {}
    return _option(options.FIELDS[name].default, "estimator", help or meta["help"], **extra)


@dataclasses.dataclass
class RunConfig:
    """Everything that defines a training run. Defaults: the paper's network.

    196-20-10 threshold (step) network trained by GLR with cross-entropy on
    mnist5k at 14x14. `sigma` is the noise's standard deviation for both
    Gaussian and Laplace noise (Laplace scale b = sigma / sqrt(2)).
    """

    dataset: str = _option(
        "mnist5k", "data", "mnist5k (offline), tiny_imagenet, or a TFDS name such as mnist, fashion_mnist"
    )
    data_dir: str = _option(None, "data", "prepared TFDS data directory, or the tiny-imagenet-200 folder")
    image_size: int = _option(14, "data", "resize images to N x N (0 keeps their size)")
    validation_fraction: float = _option(0.1, "data", "share of the training examples held out for validation")
    arch: str = _option("mlp", "network", registry.describe(), choices=ARCHITECTURES)
    hidden: tuple = _option(
        (20,),
        "network",
        "hidden layer widths of the mlp, of each stacked recurrence of the rnn or snn, or of each transformer block, "
        "e.g. 20 or 50,50",
        parse=parse_hidden,
    )
    filters: tuple = _option(
        (8, 16),
        "network",
        "conv widths of the cnn (one per conv layer) or the resnet (stem and stages)",
        parse=parse_filters,
    )
    init_from: str = _option(
        None,
        "network",
        "start from the weights of this run directory or .keras file (a BP run too; the network must "
        "match, --activation may differ, e.g. step to binarise a relu run)",
        metavar="RUN_DIR",
    )
    cell: str = _option("simple", "network", "rnn: simple (h = phi(x W + h U + b + r)), lstm or gru", choices=CELLS)
    time_steps: int = _option(8, "network", "snn: steps each input is presented for")
    encoding: str = _option(
        "direct",
        "network",
        "snn: direct (the input as current at every step) or rate (Bernoulli spikes)",
        choices=ENCODINGS,
    )
    heads: int = _option(2, "network", "transformer: attention heads per block (the width must divide by it)")
    activation: str = _option(
        "step", "network", "step (threshold), sigmoid, abs, sign, relu, ... (the snn's units always spike)"
    )
    pool: str = _option(
        "output",
        "network",
        "cnn: max-pool each conv layer's output, or its pre-activation before the noise (a quarter "
        "of the noise values; the same function for step and relu units)",
        choices=CNN_POOLS,
    )
    noise: str = _option("gaussian", "network", "distribution of the neuronal noise", choices=NOISES)
    sigma: float = _option(1.0, "network", "standard deviation of the neuronal noise")
    loss: str = _option("ce", "estimator", "ce (cross-entropy) or zero-one", choices=LOSSES)
    estimator: str = options_field(
        "estimator",
        help="glr, or a BP control: bp, bp-noise, or bp-ste (backprop with "
        "straight-through step/sign units, the fair control of a step network)",
    )
    ste_slope: float = options_field("ste_slope")
    copies: int = options_field("copies")
    baseline: str = options_field("baseline")
    antithetic: bool = options_field("antithetic")
    injection: str = options_field("injection")
    sampling: str = options_field(
        "sampling", help="mc (independent copies), or latin / sobol: stratified copies, with --baseline none (GLR only)"
    )
    copy_split: object = _option(
        "even",
        "estimator",
        "with --injection layerwise, how the K copies are shared among the noisy layers: even, proportional (to "
        "each layer's noise values), or shares in call order such as 1,2,4",
        parse=parse_copy_split,
    )
    copies_per_chunk: int = options_field("copies_per_chunk")
    perturbation_scale: float = options_field("perturbation_scale")
    spsa_directions: str = options_field("spsa_directions")
    fitness_shaping: str = options_field("fitness_shaping")
    optimizer: str = _option("adam", "optimisation", "update rule", choices=OPTIMIZERS)
    learning_rate: float = _option(0.01, "optimisation", "step size of the optimizer", alias="--lr")
    schedule: str = _option("constant", "optimisation", "learning-rate schedule", choices=SCHEDULES)
    epochs: int = _option(12, "optimisation", "passes over the training examples")
    batch_size: int = _option(32, "optimisation", "examples per step")
    seed: int = _option(0, "optimisation", "seed of the weights, the data order and the noise")
    noisy_passes: int = _option(32, "output", "M, noisy passes averaged by the serve_noisy signature")
    run_name: str = _option(None, "output", "folder name under --out (made from the options if omitted)")

    def __post_init__(self):
        self.hidden = tuple(self.hidden)
        self.filters = tuple(self.filters)
        if isinstance(self.copy_split, list):
            self.copy_split = tuple(self.copy_split)

    @classmethod
    def for_arch(cls, **values):
        """A configuration with its architecture's defaults (`ARCH_DEFAULTS`) where `values` say nothing.

        The estimator's defaults among them (copies, antithetic, injection,
        copy_split) apply to GLR only: `estimator="bp"` keeps the plain
        defaults, and `injection="all"` drops the copy split.
        """
        defaults = registry.get(values.get("arch", "mlp")).defaults
        if values.get("estimator", "glr") != "glr":
            defaults = {k: v for k, v in defaults.items() if k not in _GLR_ONLY}
        if values.get("injection", defaults.get("injection")) != "layerwise":
            defaults = {k: v for k, v in defaults.items() if k != "copy_split"}  # shares of layer-wise copies only
        return cls(**{**defaults, **values})

    def name(self):
        """The run name: `run_name`, or one made from the main options."""
        return self.run_name or registry.get(self.arch).run_name(self)

    def to_json(self):
        split = list(self.copy_split) if isinstance(self.copy_split, tuple) else self.copy_split
        return {
            **dataclasses.asdict(self),
            "hidden": list(self.hidden),
            "filters": list(self.filters),
            "copy_split": split,
        }

    @classmethod
    def from_json(cls, values):
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def differences(self, other, ignore=("data_dir",)):
        """Sorted names of the fields whose values differ from `other`'s."""
        mine, theirs = self.to_json(), other.to_json()
        return sorted(k for k in mine if mine[k] != theirs.get(k) and k not in ignore)

    def estimator_options(self, copies_per_layer=None):
        """The `options.EstimatorOptions` of this run (`copies_per_layer` from the copy split and the model)."""
        return options.EstimatorOptions(
            **{name: getattr(self, name) for name in options.NAMES if hasattr(self, name)},
            copies_per_layer=copies_per_layer,
        )

    def validate(self):
        """Raises ValueError naming the first bad field, as `name`."""
        from keras_glr.activations import get as get_activation

        def choice(name, options):
            value = getattr(self, name)
            if value not in options:
                raise ValueError(f"Invalid `{name}`: {value!r}. Expected one of {list(options)}.")

        def positive(name, kind=float):
            value = getattr(self, name)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
            if not ok or (kind is int and int(value) != value):
                raise ValueError(
                    f"Invalid `{name}`: {value!r}. Expected a positive {'integer' if kind is int else 'number'}."
                )

        choice("arch", ARCHITECTURES)
        choice("pool", CNN_POOLS)
        choice("cell", CELLS)
        choice("encoding", ENCODINGS)
        positive("time_steps", int)
        for arch, record in registry.ARCHITECTURES.items():
            for name, default in record.options.items():
                if self.arch != arch and getattr(self, name) != default:
                    raise ValueError(
                        f"Invalid `{name}`: {getattr(self, name)!r}. It is an option of the {arch}, and this run's "
                        "arch is "
                        f"{self.arch!r}. Drop it, or train the {arch}."
                    )
        if not self.filters or any(not isinstance(w, int) or isinstance(w, bool) or w < 1 for w in self.filters):
            raise ValueError(f"Invalid `filters`: {self.filters!r}. Expected positive conv widths such as (8, 16).")
        choice("loss", LOSSES)
        choice("noise", NOISES)
        choice("optimizer", OPTIMIZERS)
        choice("schedule", SCHEDULES)
        for name in ("sigma", "learning_rate"):
            positive(name)
        for name in ("epochs", "batch_size", "noisy_passes"):
            positive(name, int)
        if self.copies_per_chunk is not None:
            positive("copies_per_chunk", int)
        if self.image_size is not None:
            positive("image_size", int)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
            raise ValueError(f"Invalid `seed`: {self.seed!r}. Expected an integer from 0 to 2**32 - 1, e.g. seed=0.")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(
                f"Invalid `validation_fraction`: {self.validation_fraction!r}. Expected a number in [0, 1), "
                "the share of the training examples held out."
            )
        if not self.hidden or any(not isinstance(w, int) or w < 1 for w in self.hidden):
            raise ValueError(
                f"Invalid `hidden`: {self.hidden!r}. Expected positive layer widths such as (20,) or (50, 50)."
            )
        get_activation(self.activation)
        self.estimator_options().validate()
        parse_copy_split(self.copy_split)
        if self.copy_split != "even" and self.injection != "layerwise":
            raise ValueError(
                f"Invalid `copy_split`: {self.copy_split!r}. It shares the copies among the noisy layers of "
                "layer-wise injection; use injection='layerwise', or copy_split='even'."
            )
        if self.run_name is not None and (
            not isinstance(self.run_name, str)
            or not self.run_name
            or os.sep in self.run_name
            or self.run_name in (".", "..")
            or self.run_name.startswith(".")
            or "\0" in self.run_name
        ):
            raise ValueError(
                f"Invalid `run_name`: {self.run_name!r}. Use a plain folder name without '{os.sep}', not starting "
                "with '.'."
            )
        if len(self.name().encode()) > MAX_NAME_BYTES:
            raise ValueError(
                f"Invalid `run_name`: a name of {len(self.name().encode())} bytes. Expected at most {MAX_NAME_BYTES} "
                "(folder "
                "names are limited to 255 bytes, and the run's lock and journal files add to it). Choose a shorter "
                "name."
            )


def read_config(run_dir):
    """The `RunConfig` stored in `run_dir/config.json`. Raises FileNotFoundError or DamagedFileError."""
    path = os.path.join(run_dir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{run_dir} holds no config.json; is it a glr-train run directory?")
    values = read_json(path)
    try:
        config = RunConfig.from_json(values)
        config.validate()
    except (TypeError, ValueError) as error:
        reason = str(error).strip().rstrip(".")
        raise DamagedFileError(
            f"{path} is damaged: {reason}. Restore it, or start the run again with --overwrite."
        ) from None
    return config


def describe_gradient(config):
    """One line for run.json: what the estimator differentiates."""
    if config.estimator == "glr":
        return "GLR: per-layer likelihood-ratio estimate from the loss value and the noise score"
    if config.estimator == "bp":
        return "backprop through the noiseless network"
    if config.estimator == "bp-noise":
        return "backprop through the noisy network (reparameterised)"
    if config.estimator == "forward-gradient":
        return (
            f"forward gradient: {config.copies} random tangents pushed forward per step, (grad L . v) v, the "
            "neurons noiseless"
        )
    if config.estimator == "spsa":
        return (
            f"SPSA (MeZO): {config.copies // 2} {config.spsa_directions} direction(s) per step, two passes each with "
            f"every weight moved in place by +-{config.perturbation_scale} along it, the neurons noiseless"
        )
    if config.estimator == "weight-perturbation":
        return (
            f"weight perturbation: {config.copies // 2} antithetic Gaussian perturbations of every weight (sigma "
            f"{config.perturbation_scale}) per step, the neurons noiseless"
            + ("; fitness shaped by centred ranks" if config.fitness_shaping == "centred-ranks" else "")
        )
    surrogate = "identity" if config.ste_slope is None else f"derivative of sigmoid({config.ste_slope} x)"
    note = f"backprop through the noisy network; step/sign units pass the gradient straight through ({surrogate})"
    if config.loss == "zero-one":
        note += "; the 0-1 loss is replaced by softmax cross-entropy for the gradient only"
    return note
