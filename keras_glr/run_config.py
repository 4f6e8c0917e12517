"""A training run's configuration: its fields, their checks, its name, its parts.

`RunConfig` is the single list of what defines a run. Each field carries its
command-line help and group in `metadata`, so `glr-train` builds its options
from this list. The module needs only the standard library at import time:
the command line reads it without loading TensorFlow, and the factories at
the bottom import Keras when they are called.
"""

import dataclasses
import math
import os

import keras_glr.options as options
from keras_glr.options import BASELINES  # noqa: F401  (the estimator's names, declared once in `options`)
from keras_glr.options import ESTIMATORS  # noqa: F401
from keras_glr.options import INJECTIONS  # noqa: F401
from keras_glr.options import SAMPLINGS  # noqa: F401

LOSSES = ("ce", "zero-one")
NOISES = ("gaussian", "laplace")
ARCHITECTURES = ("mlp", "cnn", "resnet", "rnn", "snn")
CELLS = ("simple", "lstm", "gru")  # the cells of `architectures.rnn`
ENCODINGS = ("direct", "rate")  # the spike encoders of `architectures.snn`
CNN_POOLS = ("output", "pre-activation")  # where `architectures.small_cnn` pools (it reads this tuple)
MAX_NAME_BYTES = 200  # a run's name; its lock file `.<name>.lock` and journal `.<name>.commit.json` must fit in 255 bytes
OPTIMIZERS = ("sgd", "adam", "rmsprop", "momentum")
SCHEDULES = ("constant", "cosine", "step")
#: Where an architecture trains with other settings than the paper's network.
#: The small CNN (two noisy conv layers) trains by GLR with ReLU units, small
#: noise on the max-pooled pre-activations, layer-wise injection with
#: antithetic pairs and a cosine schedule (README, "What makes the CNN
#: train"); with the MLP's settings it does not train. Its copies are shared
#: 1 : 2 : 4 among conv 1, conv 2 and the logits: a copy of a later layer's
#: group is cheaper (it begins at that layer). The resnet takes the CNN's
#: units, noise scale, injection and schedule; its eight noisy layers (the
#: stem and its normalization, the block's two convs, shortcut and two
#: normalizations, the logits) share K = 320 copies 1 : ... : 1 : 3, 32 to
#: each layer and 96 to the logits, on batches of 64, where batches of 32
#: carried too much noise per step (screens in guides/your-network.md). The
#: networks in time take small noise, antithetic pairs and a cosine
#: schedule; the rnn's 64 x 14 noise values per example need K = 300 copies
#: and Adam 0.003 to come within 3 points of BPTT (0.855 with K = 100), the
#: snn's spikes train with K = 64 (guides/networks-in-time.md).
ARCH_DEFAULTS = {
    "mlp": {},
    "cnn": {"activation": "relu", "pool": "pre-activation", "sigma": 0.05, "copies": 232, "antithetic": True,
            "injection": "layerwise", "copy_split": (1, 2, 4), "schedule": "cosine"},
    "resnet": {"activation": "relu", "sigma": 0.05, "copies": 320, "antithetic": True, "injection": "layerwise",
               "copy_split": (1, 1, 1, 1, 1, 1, 1, 3), "schedule": "cosine", "batch_size": 64},
    "rnn": {"activation": "tanh", "hidden": (64,), "sigma": 0.1, "copies": 300, "antithetic": True, "schedule": "cosine",
            "learning_rate": 0.003},
    "snn": {"hidden": (128,), "sigma": 0.3, "copies": 64, "antithetic": True, "schedule": "cosine"},
}
_GLR_ONLY = ("copies", "antithetic", "injection", "copy_split")  # defaults of the estimator, not of the network


def parse_hidden(text, what="hidden layer widths", example="'20' or '50,50'"):
    """Parses "20" or "50,50" into a tuple of layer widths. Raises ValueError."""
    try:
        widths = tuple(int(part) for part in str(text).split(",") if part.strip() != "")
    except ValueError:
        widths = ()
    if not widths or any(w < 1 for w in widths):
        raise ValueError(
            f"Invalid {what}: {text!r}. Expected positive integers "
            f"separated by commas, e.g. {example}."
        )
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
    if not shares or any(isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) or s <= 0 for s in shares):
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

    dataset: str = _option("mnist5k", "data", "mnist5k (offline), tiny_imagenet, or a TFDS name such as mnist, fashion_mnist")
    data_dir: str = _option(None, "data", "prepared TFDS data directory, or the tiny-imagenet-200 folder")
    image_size: int = _option(14, "data", "resize images to N x N (0 keeps their size)")
    validation_fraction: float = _option(0.1, "data", "share of the training examples held out for validation")
    arch: str = _option(
        "mlp", "network", "mlp (the paper's network), cnn, resnet (residual, batch-normalized), rnn (rows as time steps) "
        "or snn (spiking, LIF units)", choices=ARCHITECTURES,
    )
    hidden: tuple = _option((20,), "network", "hidden layer widths of the mlp, or of each stacked recurrence of the rnn or snn, "
                            "e.g. 20 or 50,50", parse=parse_hidden)
    filters: tuple = _option((8, 16), "network", "conv widths of the cnn (one per conv layer) or the resnet (stem and stages)",
                             parse=parse_filters)
    init_from: str = _option(
        None, "network", "start from the weights of this run directory or .keras file (a BP run too; the network must "
        "match, --activation may differ, e.g. step to binarise a relu run)", metavar="RUN_DIR",
    )
    cell: str = _option("simple", "network", "rnn: simple (h = phi(x W + h U + b + r)), lstm or gru", choices=CELLS)
    time_steps: int = _option(8, "network", "snn: steps each input is presented for")
    encoding: str = _option("direct", "network", "snn: direct (the input as current at every step) or rate (Bernoulli spikes)",
                            choices=ENCODINGS)
    activation: str = _option("step", "network", "step (threshold), sigmoid, abs, sign, relu, ... (the snn's units always spike)")
    pool: str = _option(
        "output", "network", "cnn: max-pool each conv layer's output, or its pre-activation before the noise (a quarter "
        "of the noise values; the same function for step and relu units)", choices=CNN_POOLS,
    )
    noise: str = _option("gaussian", "network", "distribution of the neuronal noise", choices=NOISES)
    sigma: float = _option(1.0, "network", "standard deviation of the neuronal noise")
    loss: str = _option("ce", "estimator", "ce (cross-entropy) or zero-one", choices=LOSSES)
    estimator: str = options_field("estimator", help="glr, or a BP control: bp, bp-noise, or bp-ste (backprop with "
                                   "straight-through step/sign units, the fair control of a step network)")
    ste_slope: float = options_field("ste_slope")
    copies: int = options_field("copies")
    baseline: str = options_field("baseline")
    antithetic: bool = options_field("antithetic")
    injection: str = options_field("injection")
    sampling: str = options_field("sampling", help="mc (independent copies), or latin / sobol: stratified copies, with "
                                  "--baseline none (GLR only)")
    copy_split: object = _option(
        "even", "estimator",
        "with --injection layerwise, how the K copies are shared among the noisy layers: even, proportional (to "
        "each layer's noise values), or shares in call order such as 1,2,4",
        parse=parse_copy_split,
    )
    copies_per_chunk: int = options_field("copies_per_chunk")
    perturbation_scale: float = options_field("perturbation_scale")
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
        arch = values.get("arch", "mlp")
        if arch not in ARCH_DEFAULTS:
            raise ValueError(f"Invalid `arch`: {arch!r}. Expected one of {list(ARCHITECTURES)}.")
        defaults = ARCH_DEFAULTS[arch]
        if values.get("estimator", "glr") != "glr":
            defaults = {k: v for k, v in defaults.items() if k not in _GLR_ONLY}
        if values.get("injection", defaults.get("injection")) != "layerwise":
            defaults = {k: v for k, v in defaults.items() if k != "copy_split"}  # shares of layer-wise copies only
        return cls(**{**defaults, **values})

    def name(self):
        """The run name: `run_name`, or one made from the main options."""
        if self.run_name:
            return self.run_name
        hidden = "-".join(map(str, self.hidden)) if self.arch == "mlp" else self.arch
        if self.arch == "snn":
            return f"{self.dataset}_snn_{self.loss}_{self.estimator}_seed{self.seed}"
        return f"{self.dataset}_{hidden}_{self.activation}_{self.loss}_{self.estimator}_seed{self.seed}"

    def to_json(self):
        split = list(self.copy_split) if isinstance(self.copy_split, tuple) else self.copy_split
        return {**dataclasses.asdict(self), "hidden": list(self.hidden), "filters": list(self.filters), "copy_split": split}

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
        return options.EstimatorOptions(**{name: getattr(self, name) for name in options.NAMES if hasattr(self, name)},
                                        copies_per_layer=copies_per_layer)

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
                raise ValueError(f"Invalid `{name}`: {value!r}. Expected a positive {'integer' if kind is int else 'number'}.")

        choice("arch", ARCHITECTURES)
        choice("pool", CNN_POOLS)
        choice("cell", CELLS)
        choice("encoding", ENCODINGS)
        positive("time_steps", int)
        for name, arch, default in (("cell", "rnn", "simple"), ("time_steps", "snn", 8), ("encoding", "snn", "direct")):
            if self.arch != arch and getattr(self, name) != default:
                raise ValueError(
                    f"Invalid `{name}`: {getattr(self, name)!r}. It is an option of the {arch}, and this run's arch is "
                    f"{self.arch!r}. Drop it, or train the {arch}."
                )
        if not self.filters or any(not isinstance(w, int) or isinstance(w, bool) or w < 1 for w in self.filters):
            raise ValueError(f"Invalid `filters`: {self.filters!r}. Expected positive conv widths such as (8, 16).")
        if self.arch != "cnn" and self.pool != "output":
            raise ValueError(
                f"Invalid `pool`: {self.pool!r}. It says where the CNN's conv layers pool, and this run's arch is "
                f"{self.arch!r}. Drop it, or train the cnn."
            )
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
            raise ValueError(f"Invalid `hidden`: {self.hidden!r}. Expected positive layer widths such as (20,) or (50, 50).")
        get_activation(self.activation)
        self.estimator_options().validate()
        parse_copy_split(self.copy_split)
        if self.copy_split != "even" and self.injection != "layerwise":
            raise ValueError(
                f"Invalid `copy_split`: {self.copy_split!r}. It shares the copies among the noisy layers of "
                "layer-wise injection; use injection='layerwise', or copy_split='even'."
            )
        if self.run_name is not None and (not isinstance(self.run_name, str) or not self.run_name or os.sep in self.run_name
                                          or self.run_name in (".", "..") or self.run_name.startswith(".") or "\0" in self.run_name):
            raise ValueError(f"Invalid `run_name`: {self.run_name!r}. Use a plain folder name without '{os.sep}', not starting with '.'.")
        if len(self.name().encode()) > MAX_NAME_BYTES:
            raise ValueError(
                f"Invalid `run_name`: a name of {len(self.name().encode())} bytes. Expected at most {MAX_NAME_BYTES} (folder "
                "names are limited to 255 bytes, and the run's lock and journal files add to it). Choose a shorter name."
            )


def make_noise(config):
    """The configured noise: `Gaussian(sigma)`, or `Laplace` of scale sigma / sqrt(2) (the same standard deviation)."""
    from keras_glr import noise

    if config.noise == "gaussian":
        return noise.Gaussian(config.sigma)
    return noise.Laplace(config.sigma / math.sqrt(2.0))


def make_loss(config):
    """The configured loss: "zero_one", or sparse softmax cross-entropy of the logits."""
    import keras

    if config.loss == "zero-one":
        return "zero_one"
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def make_optimizer(config, steps_per_epoch):
    """The configured optimizer, its learning rate following the configured schedule over `epochs * steps_per_epoch` steps."""
    import keras

    rate = config.learning_rate
    total = steps_per_epoch * config.epochs
    if config.schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(rate, decay_steps=total)
    elif config.schedule == "step":
        boundaries = [int(total * 0.5), int(total * 0.75)]
        rate = keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, [rate, rate * 0.1, rate * 0.01])
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(rate)
    if config.optimizer == "momentum":
        return keras.optimizers.SGD(rate, momentum=0.9)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(rate)
    return keras.optimizers.RMSprop(rate)


def build_model(config, info, steps_per_epoch):
    """The compiled model that `config` describes, for data described by `info`."""
    from keras_glr import architectures

    noise = make_noise(config)
    if config.arch == "mlp":
        model = architectures.mlp(info.input_shape, info.num_classes, config.hidden, config.activation, noise)
    elif config.arch == "cnn":
        model = architectures.small_cnn(info.input_shape, info.num_classes, config.filters, activation=config.activation,
                                        noise=noise, pool=config.pool)
    elif config.arch == "resnet":
        model = architectures.resnet(info.input_shape, info.num_classes, config.filters, activation=config.activation, noise=noise)
    elif config.arch == "rnn":
        model = architectures.rnn(info.input_shape, info.num_classes, config.hidden, config.cell, config.activation, noise)
    else:
        model = architectures.snn(info.input_shape, info.num_classes, config.hidden, config.time_steps, config.encoding,
                                  noise=noise, seed=config.seed)
    if config.init_from:
        initialise_from(model, config.init_from)
    chosen = config.estimator_options(copies_per_layer(config, model))
    model.compile(make_optimizer(config, steps_per_epoch), make_loss(config), metrics=["accuracy"], **dataclasses.asdict(chosen))
    return model


def initialise_from(model, source):
    """Sets `model`'s weights (trainable and not: BN statistics too) to those of the run or .keras file `source`.

    The networks must match weight for weight; the activations may differ.
    Raises ValueError naming the first mismatch.
    """
    import keras

    from keras_glr import runs

    path = runs.model_file(source)
    weights = keras.saving.load_model(path, compile=False).get_weights()
    shapes = [tuple(w.shape) for w in weights]
    expected = [tuple(w.shape) for w in model.get_weights()]
    if shapes != expected:
        first = next((i for i, (a, b) in enumerate(zip(shapes, expected)) if a != b), min(len(shapes), len(expected)))
        raise ValueError(
            f"Invalid `init_from`: {source} holds a network of {len(shapes)} weight arrays, this configuration builds "
            f"{len(expected)}; they differ first at array {first} ({shapes[first] if first < len(shapes) else 'none'} "
            f"against {expected[first] if first < len(expected) else 'none'}). Use the --arch, --hidden, --filters and "
            "--pool of the run you start from."
        )
    model.set_weights(weights)


def copies_per_layer(config, model):
    """`compile`'s `copies_per_layer` for `config.copy_split`: None (even), "proportional", or sizes from the shares.

    Shares become whole copies (pairs, with antithetic noise) by largest
    remainders, at least one each (`copies.proportional_sizes`): "1,2,4"
    with K = 232 and pairs gives 34, 66, 132. Raises ValueError when the
    shares are not one per noisy layer.
    """
    from keras_glr import copies
    from keras_glr.layers import noisy_layers

    if config.copy_split == "even":
        return None
    if config.copy_split == "proportional":
        return "proportional"
    layers = [layer.name for layer in noisy_layers(model)]
    if len(config.copy_split) != len(layers):
        raise ValueError(
            f"Invalid `copy_split`: {','.join(map(str, config.copy_split))} gives {len(config.copy_split)} shares, but the "
            f"{config.arch} has {len(layers)} noisy layers ({', '.join(layers)}). Give one share per noisy layer, or "
            "--copy-split even."
        )
    return copies.proportional_sizes(config.copies, config.copy_split, 2 if config.antithetic else 1)


def describe_gradient(config):
    """One line for run.json: what the estimator differentiates."""
    if config.estimator == "glr":
        return "GLR: per-layer likelihood-ratio estimate from the loss value and the noise score"
    if config.estimator == "bp":
        return "backprop through the noiseless network"
    if config.estimator == "bp-noise":
        return "backprop through the noisy network (reparameterised)"
    if config.estimator == "forward-gradient":
        return f"forward gradient: {config.copies} random tangents pushed forward per step, (grad L . v) v, the neurons noiseless"
    if config.estimator == "weight-perturbation":
        return (f"weight perturbation: {config.copies // 2} antithetic Gaussian perturbations of every weight (sigma "
                f"{config.perturbation_scale}) per step, the neurons noiseless")
    surrogate = "identity" if config.ste_slope is None else f"derivative of sigmoid({config.ste_slope} x)"
    note = f"backprop through the noisy network; step/sign units pass the gradient straight through ({surrogate})"
    if config.loss == "zero-one":
        note += "; the 0-1 loss is replaced by softmax cross-entropy for the gradient only"
    return note
