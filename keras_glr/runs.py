"""Training runs: one configuration in, one run directory out.

    saved_models/<run-name>/
        model.keras          the trained Keras model (optimizer included)
        saved_model/         TF SavedModel: serving_default, serve_noisy
        run.json             configuration, final metrics, versions, seed, time
        training_log.csv     one row per epoch
        training_curves.png  loss and accuracy against epoch
        tensorboard/         TensorBoard logs
        checkpoint/          last finished epoch, for `resume=True`

A run is resumable: after an interruption `train(config, resume=True)`
continues from the last finished epoch with the optimizer state, the noise
generators' state and the data order of an uninterrupted run.
"""

import dataclasses
import json
import math
import os
import platform
import shutil
import time

import keras
import numpy as np
import tensorflow as tf

from keras_glr import architectures
from keras_glr import data as data_module
from keras_glr import estimators
from keras_glr import noise as noise_module
from keras_glr.activations import get as get_activation
from keras_glr.streams import noise_states
from keras_glr.streams import restore_noise_states

LOSSES = ("ce", "zero-one")
NOISES = ("gaussian", "laplace")
ARCHITECTURES = ("mlp", "cnn")
OPTIMIZERS = ("sgd", "adam", "rmsprop", "momentum")
SCHEDULES = ("constant", "cosine", "step")


class RunError(ValueError):
    """A run cannot start as asked (name taken, directory unwritable, ...)."""


@dataclasses.dataclass
class RunConfig:
    """Everything that defines a training run. Defaults: the paper's network.

    196-20-10 threshold (step) network trained by GLR with cross-entropy on
    mnist5k at 14x14. `sigma` is the noise's standard deviation for both
    Gaussian and Laplace noise (Laplace scale b = sigma / sqrt(2)).
    """

    dataset: str = "mnist5k"
    data_dir: str = None
    image_size: int = 14
    arch: str = "mlp"
    hidden: tuple = (20,)
    activation: str = "step"
    loss: str = "ce"
    noise: str = "gaussian"
    sigma: float = 1.0
    copies: int = 100
    baseline: str = "loo"
    antithetic: bool = False
    estimator: str = "glr"
    ste_slope: float = None
    optimizer: str = "adam"
    learning_rate: float = 0.01
    schedule: str = "constant"
    epochs: int = 12
    batch_size: int = 32
    seed: int = 0
    validation_fraction: float = 0.1
    noisy_passes: int = 32
    run_name: str = None

    def __post_init__(self):
        self.hidden = tuple(self.hidden)

    def name(self):
        """The run name: `run_name`, or one made from the main options."""
        if self.run_name:
            return self.run_name
        hidden = "-".join(map(str, self.hidden)) if self.arch == "mlp" else "cnn"
        return f"{self.dataset}_{hidden}_{self.activation}_{self.loss}_{self.estimator}_seed{self.seed}"

    def to_json(self):
        return {**dataclasses.asdict(self), "hidden": list(self.hidden)}

    @classmethod
    def from_json(cls, values):
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def validate(self):
        """Raises ValueError naming the first bad option."""

        def choice(name, options):
            value = getattr(self, name)
            if value not in options:
                raise ValueError(f"Invalid {name}: {value!r}. Expected one of {list(options)}.")

        def positive(name, kind=float):
            value = getattr(self, name)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
            if not ok or (kind is int and int(value) != value):
                raise ValueError(f"Invalid {name}: {value!r}. Expected a positive {'integer' if kind is int else 'number'}.")

        choice("arch", ARCHITECTURES)
        choice("loss", LOSSES)
        choice("noise", NOISES)
        choice("optimizer", OPTIMIZERS)
        choice("schedule", SCHEDULES)
        for name in ("sigma", "learning_rate"):
            positive(name)
        for name in ("epochs", "batch_size", "noisy_passes"):
            positive(name, int)
        if self.image_size is not None:
            positive("image_size", int)
        if not self.hidden or any(not isinstance(w, int) or w < 1 for w in self.hidden):
            raise ValueError(f"Invalid hidden: {self.hidden!r}. Expected positive layer widths such as (20,) or (50, 50).")
        get_activation(self.activation)
        estimators.check_options(self.copies, self.baseline, self.antithetic, self.estimator, self.ste_slope)
        if self.run_name is not None and (not self.run_name or os.sep in self.run_name or self.run_name in (".", "..")):
            raise ValueError(f"Invalid run name: {self.run_name!r}. Use a plain folder name without '{os.sep}'.")


def make_noise(config):
    if config.noise == "gaussian":
        return noise_module.Gaussian(config.sigma)
    return noise_module.Laplace(config.sigma / math.sqrt(2.0))


def make_loss(config):
    if config.loss == "zero-one":
        return "zero_one"
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def make_optimizer(config, steps_per_epoch):
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


def load_data(config):
    return data_module.load(
        config.dataset,
        batch_size=config.batch_size,
        image_size=config.image_size,
        flatten=config.arch == "mlp",
        seed=config.seed,
        validation_fraction=config.validation_fraction,
        data_dir=config.data_dir,
    )


def build_model(config, info, steps_per_epoch):
    """The compiled model that `config` describes, for data described by `info`."""
    noise = make_noise(config)
    if config.arch == "mlp":
        model = architectures.mlp(info.input_shape, info.num_classes, config.hidden, config.activation, noise)
    else:
        model = architectures.small_cnn(info.input_shape, info.num_classes, activation=config.activation, noise=noise)
    model.compile(
        make_optimizer(config, steps_per_epoch),
        make_loss(config),
        metrics=["accuracy"],
        copies=config.copies,
        baseline=config.baseline,
        antithetic=config.antithetic,
        estimator=config.estimator,
        ste_slope=config.ste_slope,
    )
    return model


class _EpochCheckpoint(keras.callbacks.Callback):
    """Saves the model and the finished epoch count atomically after each epoch."""

    def __init__(self, folder, previous_seconds=0.0):
        super().__init__()
        self.folder = folder
        self.previous_seconds = previous_seconds
        self.started = time.time()

    def on_epoch_end(self, epoch, logs=None):
        os.makedirs(self.folder, exist_ok=True)
        model_path = os.path.join(self.folder, "model.keras")
        self.model.save(model_path + ".tmp.keras")
        os.replace(model_path + ".tmp.keras", model_path)
        seconds = self.previous_seconds + time.time() - self.started
        state = {"epochs_done": epoch + 1, "wall_time_seconds": seconds, "noise_states": noise_states(self.model)}
        write_json(os.path.join(self.folder, "state.json"), state)


def write_json(path, values):
    """Writes `values` as JSON atomically (a reader never sees half a file)."""
    with open(path + ".tmp", "w") as f:
        json.dump(values, f, indent=2, default=str)
    os.replace(path + ".tmp", path)


def read_json(path):
    with open(path) as f:
        return json.load(f)


def _versions():
    import keras_glr

    return {
        "keras_glr": keras_glr.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def prepare_run_directory(root, name, resume=False, overwrite=False, config=None):
    """Returns the run directory, checking it may be used as asked.

    A taken name is an error unless `resume` (same configuration) or
    `overwrite` (the old run is deleted). Raises RunError.
    """
    run_dir = os.path.join(root, name)
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise RunError(f"{run_dir} exists and is not a directory; choose another --run-name or --out.")
    if os.path.isdir(run_dir) and os.listdir(run_dir):
        if overwrite:
            shutil.rmtree(run_dir)
        elif resume:
            previous = os.path.join(run_dir, "config.json")
            if config is not None and os.path.exists(previous):
                old = RunConfig.from_json(read_json(previous)).to_json()
                new = config.to_json()
                changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k) and k != "data_dir")
                if changed:
                    raise RunError(
                        f"Cannot resume {run_dir}: its configuration differs in {changed}. "
                        "Resume with the same options, or choose a new --run-name."
                    )
        else:
            raise RunError(
                f"A run named {name!r} already exists in {root}. Pass --resume to "
                "continue it, --overwrite to replace it, or choose another --run-name."
            )
    ensure_writable(run_dir, hint="Choose a writable --out directory.")
    return run_dir


def ensure_writable(folder, what="", hint=""):
    """Creates `folder` and checks that a file can be written there.

    Raises RunError "Cannot write to {what}{folder}: {reason}. {hint}".
    """
    try:
        os.makedirs(folder, exist_ok=True)
        probe = os.path.join(folder, ".write_test")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as error:
        raise RunError(f"Cannot write to {what}{folder}: {error.strerror}. {hint}".strip()) from None


@dataclasses.dataclass
class RunResult:
    run_dir: str
    metrics: dict
    resumed_from_epoch: int
    finished: bool


def train(config, root="saved_models", resume=False, overwrite=False, verbose="auto", callbacks=(), record=None):
    """Trains `config` into `root/<run name>/` and returns a `RunResult`.

    Args:
        config: a `RunConfig`.
        root: folder that holds run directories.
        resume: continue an interrupted run with this name (or start it).
        overwrite: delete an existing run with this name first.
        verbose: Keras progress display (1 = progress bar, 2 = a line per
            epoch, 0 = silent, "auto").
        callbacks: extra Keras callbacks, run after the checkpoint.
        record: extra entries for run.json (e.g. {"twin_of": path}).

    Raises:
        ValueError / RunError: bad options or an unusable run directory.
        DataUnavailableError: the dataset is not on this machine.
    """
    config.validate()
    run_dir = prepare_run_directory(root, config.name(), resume, overwrite, config)
    if resume and os.path.exists(os.path.join(run_dir, "run.json")):
        summary = read_json(os.path.join(run_dir, "run.json"))
        if summary.get("status") == "finished":
            return RunResult(run_dir, summary["metrics"], summary["epochs"], True)
    write_json(os.path.join(run_dir, "config.json"), config.to_json())
    started = time.time()
    keras.utils.set_random_seed(config.seed)
    splits = load_data(config)
    checkpoint = os.path.join(run_dir, "checkpoint")
    state_path = os.path.join(checkpoint, "state.json")
    first_epoch = read_json(state_path)["epochs_done"] if resume and os.path.exists(state_path) else 0
    if first_epoch:
        model = keras.saving.load_model(os.path.join(checkpoint, "model.keras"))
        restore_noise_states(model, read_json(state_path)["noise_states"])
    else:
        model = build_model(config, splits.info, splits.steps_per_epoch)
    previous_time = read_json(state_path)["wall_time_seconds"] if first_epoch else 0.0
    log_path = os.path.join(run_dir, "training_log.csv")
    all_callbacks = [
        _EpochCheckpoint(checkpoint, previous_time),
        keras.callbacks.CSVLogger(log_path, append=first_epoch > 0),
        keras.callbacks.TensorBoard(os.path.join(run_dir, "tensorboard")),
        *callbacks,
    ]
    if first_epoch < config.epochs:
        model.fit(
            splits.train_epochs(first_epoch),
            steps_per_epoch=splits.steps_per_epoch,
            epochs=config.epochs,
            initial_epoch=first_epoch,
            validation_data=splits.validation,
            callbacks=all_callbacks,
            shuffle=False,  # the stream is already shuffled from the seed
            verbose=verbose,
        )
    elapsed = previous_time + time.time() - started
    return _finish(config, model, splits, run_dir, log_path, elapsed, first_epoch, record or {})


def describe_gradient(config):
    """One line for run.json: what the estimator differentiates."""
    if config.estimator == "glr":
        return "GLR: per-layer likelihood-ratio estimate from the loss value and the noise score"
    if config.estimator == "bp":
        return "backprop through the noiseless network"
    if config.estimator == "bp-noise":
        return "backprop through the noisy network (reparameterised)"
    surrogate = "identity" if config.ste_slope is None else f"derivative of sigmoid({config.ste_slope} x)"
    note = f"backprop through the noisy network; step/sign units pass the gradient straight through ({surrogate})"
    if config.loss == "zero-one":
        note += "; the 0-1 loss is replaced by softmax cross-entropy for the gradient only"
    return note


def _finish(config, model, splits, run_dir, log_path, wall_time, first_epoch, record):
    from keras_glr import export
    from keras_glr import plots

    test_loss, test_accuracy = model.evaluate(splits.test, verbose=0)
    history = plots.read_log(log_path)
    last = {k: v[-1] for k, v in history.items() if v}
    metrics = {
        "test_accuracy": float(test_accuracy),
        "test_loss": float(test_loss),
        **{k: float(v) for k, v in last.items() if k != "epoch"},
    }
    model.save(os.path.join(run_dir, "model.keras"))
    saved_model = os.path.join(run_dir, "saved_model")
    if os.path.exists(saved_model):
        shutil.rmtree(saved_model)
    export.export_saved_model(model, saved_model, config.noisy_passes)
    plots.plot_training_curves(history, os.path.join(run_dir, "training_curves.png"), title=config.name())
    summary = {
        "status": "finished",
        "name": config.name(),
        "config": config.to_json(),
        "metrics": metrics,
        "epochs": config.epochs,
        "resumed_from_epoch": first_epoch,
        "seed": config.seed,
        "gradient": describe_gradient(config),
        **record,
        "wall_time_seconds": round(wall_time, 2),
        "data": dataclasses.asdict(splits.info),
        "versions": _versions(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_json(os.path.join(run_dir, "run.json"), summary)
    return RunResult(run_dir, metrics, first_epoch, True)
