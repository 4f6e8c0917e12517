"""The paper's Tables I and II from one call, with the controls the paper lacks.

    settings = reproduction.Settings(quick=True)               # suite="mlp"
    reproduction.reproduce(settings, out="reproduction")   # -> out/REPORT.md
    reproduction.reproduce(reproduction.Settings(suite="cnn"), out="reproduction_cnn")

What runs (every training is an ordinary run directory, out/runs/<name>):
    surrogate   a BP ReLU network of another architecture than the rows: the
                transfer attacks are crafted on it;
    table rows  suite "mlp", the paper's 196-20-10 network: BP sigmoid; GLR
                with sigmoid, threshold and |x| units and cross-entropy; GLR
                sigmoid and threshold with the 0-1 loss (twice the epochs, as
                in the paper); GLR sigmoid with Laplace noise. Suite "cnn",
                the small CNN: BP ReLU; GLR ReLU; GLR step units fine-tuned
                from the BP ReLU network of the same seed;
    twins       for every GLR row its BP control with the same noise,
                optimizer, epochs, seed and start (`keras_glr.twins`);
each for `seeds` seeds. Measured on the same test inputs: clean accuracy;
FGSM (an epsilon sweep), PGD and L-BFGS crafted once on the surrogate;
white-box PGD (BPDA / EOT gradients), SPSA and Square Attack (queries only)
and the checklist of Carlini et al. on each model; certified accuracy of each
model's smoothed classifier (randomized smoothing); the paper's four
corruptions at five severities (suite "cnn": the whole MNIST-C set). GLR rows
and twins are measured with deterministic and with noisy prediction. The
report says, row by row, where GLR is more and where less robust than its
twin.

A re-run skips finished trainings and resumes interrupted ones; evaluations
are cached per model (out/evaluations/) and the crafted inputs are saved
(out/samples/), so nothing finished is recomputed. A row whose training or
evaluation fails is reported as failed, with the error.
"""

import dataclasses
import json
import os
import platform
import time

import keras
import tensorflow as tf

from keras_glr import checkpoints
from keras_glr import data as data_module
from keras_glr import run_config
from keras_glr import runs
from keras_glr import seed_statistics
from keras_glr import twins
from keras_glr.robustness import corruptions as corruption_module
from keras_glr.robustness import evaluation
from keras_glr.robustness import report

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
CORRUPTIONS = corruption_module.PAPER_NAMES  # the paper's Table II
HEADLINE_EPS = 0.1


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of the tables: a training configuration run for every seed."""

    key: str  # run-name stem, e.g. "glr_threshold"
    title: str  # e.g. "GLR threshold"
    overrides: dict
    epochs: float = 1.0  # share of `Settings.epochs` (2: the 0-1 loss, as in the paper; 0.25: fine-tuning)
    init_from: str = None  # key of the row whose run of the same seed this one starts from

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
    radii: tuple = evaluation.RADII  # input-space radii of the certified-accuracy columns
    default_rows: tuple = None  # the rows a run without `rows` trains (None: all)

    @property
    def row_keys(self):
        return tuple(row.key for row in self.rows)

    @property
    def flatten(self):
        return self.base.get("arch", "mlp") == "mlp"


_BP = {"estimator": "bp", "copies": 1, "baseline": "none"}
# (quick, full) `Settings` defaults every suite shares; each adds its copies, sigma and batch size.
_DEFAULTS = {"seeds": (1, 3), "epochs": (3, 12), "examples": (300, None), "whitebox_examples": (20, 100),
             "certify_examples": (100, 500), "certify_samples": (1000, 10_000)}

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

_MLP_SUITE = Suite(
    name="mlp", title="Reproduction of the paper's Tables I and II", network={"mlp": "196-20-10 for every row"},
    rows=ROWS, base={"arch": "mlp", "hidden": (20,)},
    surrogate={"arch": "mlp", "hidden": (50, 50), "run_name": "surrogate_bp_50-50_relu"},
    surrogate_words="a BP 196-50-50-10 ReLU surrogate (as in the paper)",
    corruptions=corruption_module.PAPER_NAMES, paper=True,
    defaults={**_DEFAULTS, "copies": (50, 300), "sigma": (2.0, 2.0), "batch_size": (25, 25)},
)

_CNN = run_config.ARCH_DEFAULTS["cnn"]
CNN_ROWS = (
    Row("bp_cnn", "BP ReLU CNN", {**_BP, "activation": "relu"}),
    Row("glr_cnn", "GLR ReLU CNN", {"activation": "relu"}),
    Row("glr_cnn_step", "GLR step CNN, fine-tuned from BP ReLU", {"activation": "step"}, epochs=0.25, init_from="bp_cnn"),
    # The residual CNN at its own `--arch resnet` defaults (its K and copy split).
    Row("bp_resnet", "BP ReLU resnet", {**_BP, "arch": "resnet", "activation": "relu"}),
    Row("glr_resnet", "GLR ReLU resnet", {"arch": "resnet", "activation": "relu", "copies": run_config.ARCH_DEFAULTS["resnet"]["copies"],
                                         "copy_split": run_config.ARCH_DEFAULTS["resnet"]["copy_split"]}),
)

_CNN_SUITE = Suite(
    name="cnn", title="The paper's protocol on the small CNN",
    network={"cnn": "the small CNN of `glr-train --arch cnn` (conv 3x3, 8 filters, 2x2 max-pool; conv 3x3, 16 filters, 2x2 "
                    "max-pool; dense logits; each conv pools its pre-activation before the noise)",
             "resnet": "the residual CNN of `glr-train --arch resnet` (a stem of 8 filters, one residual block of 16 that "
                       "halves the resolution, every conv and batch normalization noisy)"},
    rows=CNN_ROWS, base={"arch": "cnn"},
    surrogate={"arch": "cnn", "filters": (16, 32, 32), "pool": "output", "run_name": "surrogate_bp_cnn-16-32-32_relu"},
    surrogate_words="a BP ReLU CNN of three conv layers (16, 32 and 32 filters, each max-pooled) where the rows have two",
    corruptions=corruption_module.NAMES, paper=False,
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
            raise ValueError(f"Unknown rows {unknown} for the {self.suite} suite. Expected some of {list(suite.row_keys)}.")
        for name in ("seeds", "copies", "epochs", "whitebox_examples", "noisy_passes", "batch_size", "certify_examples", "certify_samples"):
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
    return runs.RunConfig.for_arch(
        **settings.suite_spec.surrogate, dataset=settings.dataset, data_dir=settings.data_dir, activation="relu", **_BP,
        optimizer="adam", learning_rate=0.01, epochs=epochs, batch_size=32, seed=0,
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
                settings.suite_spec.base, dataset=settings.dataset, data_dir=settings.data_dir, sigma=settings.sigma,
                copies=settings.copies, optimizer=settings.optimizer, learning_rate=settings.learning_rate,
                batch_size=settings.batch_size, epochs=row.epochs_of(settings.epochs), seed=seed,
                noisy_passes=settings.noisy_passes,
            )
            values.update(row.overrides)
            if row.init_from:
                values["init_from"] = os.path.join(root, f"{row.init_from}_seed{seed}")
            config = runs.RunConfig.for_arch(**values, run_name=f"{row.key}_seed{seed}")
            out.append((row, None, config))
            if settings.twins and config.estimator == "glr":
                twin = twins.twin_config(config)
                out.append((row, row, dataclasses.replace(twin, run_name=f"{row.key}_twin_seed{seed}")))
    return out


class _Progress(keras.callbacks.Callback):
    """Advances one overall progress bar by one step per finished epoch."""

    def __init__(self, bar):
        super().__init__()
        self.bar = bar

    def on_epoch_end(self, epoch, logs=None):
        self.bar.add(1)


def _load_test_set(settings):
    """The test inputs every model is measured on (14x14 images, flat for the MLP), as numpy."""
    flatten = settings.suite_spec.flatten
    return data_module.test_arrays(settings.dataset, image_size=14, flatten=flatten, examples=settings.examples, data_dir=settings.data_dir)


def _train_all(settings, out, say):
    """Trains (or skips / resumes) every run; returns {label: (row, twin_of, run_dir | error)}."""
    root = os.path.join(out, "runs")
    todo = [(None, None, surrogate_config(settings))] + row_configs(settings, root)
    total_epochs = sum(config.epochs for _, _, config in todo)
    bar = keras.utils.Progbar(total_epochs, unit_name="epoch")
    trained = {}
    for row, twin_of, config in todo:
        label = config.name()
        summary_path = os.path.join(root, label, "run.json")
        try:
            finished = os.path.exists(summary_path) and checkpoints.read_json(summary_path, runs.SUMMARY_FIELDS)["status"] == "finished"
            if finished:
                bar.add(config.epochs)
            else:
                bar.add(checkpoints.epochs_done(os.path.join(root, label)))
                started = os.path.exists(os.path.join(root, label, "config.json"))
                runs.train(config, root=root, resume=started, verbose=0, callbacks=[_Progress(bar)])
            trained[label] = (row, twin_of, os.path.join(root, label))
        except (ValueError, OSError, data_module.DataUnavailableError, tf.errors.OpError) as error:
            trained[label] = (row, twin_of, f"{type(error).__name__}: {error}")
            bar.add(max(0, config.epochs - checkpoints.epochs_done(os.path.join(root, label))))
            say(f"\ntraining {label} failed: {error}")
    return trained


def _plans(settings):
    transfer = evaluation.Plan(attacks=("fgsm", "pgd", "lbfgs"), eps=tuple(settings.eps), corruptions=settings.suite_spec.corruptions, mode="transfer")
    whitebox = evaluation.Plan(attacks=("pgd", "spsa", "square"), eps=(HEADLINE_EPS,), corruptions=(), mode="whitebox", checklist=True)
    certify = evaluation.Plan(attacks=(), corruptions=(), mode="whitebox", certify=True, certify_samples=settings.certify_samples, alpha=settings.alpha,
                              radii=settings.suite_spec.radii)
    return transfer, whitebox, certify


PLAN_VERSION = "transfer fgsm,pgd,lbfgs + corruptions; white-box pgd (BPDA/EOT), spsa, square, checklist; certificates"


def _cache_key(settings, run_dir, noisy):
    summary = checkpoints.read_json(os.path.join(run_dir, "run.json"), runs.SUMMARY_FIELDS)
    return {
        "finished_at": summary.get("finished_at"),
        "examples": settings.examples,
        "whitebox_examples": settings.whitebox_examples,
        "eps": list(settings.eps),
        "noisy_passes": settings.noisy_passes if noisy else None,
        "certify": None if noisy else [settings.certify_examples, settings.certify_samples, settings.alpha, list(settings.suite_spec.radii)],
        "plan": PLAN_VERSION,
        "corruptions": list(settings.suite_spec.corruptions),
    }


def _evaluate_one(entry, x, y, settings, surrogate, samples):
    """Transfer attacks and corruptions on all of x; white-box attacks and the checklist on the
    first `whitebox_examples`; certificates (deterministic entries only: the smoothed classifier
    is the same for both predictions) on the first `certify_examples`.

    New transfer and corrupted inputs are added to `samples` as soon as they exist.
    """
    transfer, whitebox, certify = _plans(settings)
    results, crafted = evaluation.evaluate([entry], x, y, transfer, surrogate, samples, progress=False)
    samples.update(crafted)
    n = min(settings.whitebox_examples, len(x))
    key = f"pgd@{HEADLINE_EPS}"
    own, _ = evaluation.evaluate([entry], x[:n], y[:n], whitebox, samples={key: samples[key][:n]}, progress=False)
    results["attacks"]["pgd-whitebox"] = own["attacks"]["pgd"]
    for name in ("spsa", "square"):
        results["attacks"][name] = own["attacks"][name]
    results["checklist"] = own["checklist"]
    results["whitebox_examples"] = n
    if not isinstance(entry.model, evaluation.NoisyPrediction):
        m = min(settings.certify_examples, len(x))
        results["certified"] = evaluation.evaluate([entry], x[:m], y[:m], certify, progress=False)[0]["certified"]
    return results


def _merge(per_model):
    """Merges single-model results (same plan) into one `evaluation.evaluate`-style dict."""
    merged = None
    for results in per_model:
        if merged is None:
            merged = json.loads(json.dumps(results))
            continue
        label = results["models"][0]
        merged["models"].append(label)
        merged["groups"][label] = results["groups"][label]
        merged["clean"][label] = results["clean"][label]
        for name, by_eps in results["attacks"].items():
            for eps, values in by_eps.items():
                merged["attacks"].setdefault(name, {}).setdefault(eps, {}).update(values)
        for key in ("corruptions", "corruption_means"):
            for name, values in results.get(key, {}).items():
                merged[key].setdefault(name, {}).update(values)
        merged.setdefault("corruption_overall", {}).update(results.get("corruption_overall", {}))
        for key in ("checklist", "certified"):
            merged.setdefault(key, {}).update(results.get(key, {}))
    return merged


def _evaluate_all(settings, out, trained, x, y, say):
    """{label: results or error string}, cached in out/evaluations/."""
    cache_dir = os.path.join(out, "evaluations")
    samples_dir = os.path.join(out, "samples")
    os.makedirs(cache_dir, exist_ok=True)
    samples = report.load_samples(samples_dir, x, y) if os.path.exists(os.path.join(samples_dir, "samples.npz")) else {}
    known = set(samples)
    surrogate_label = surrogate_config(settings).name()
    surrogate_dir = trained[surrogate_label][2]
    if not os.path.isdir(str(surrogate_dir)):
        raise RuntimeError(f"The attack surrogate could not be trained ({surrogate_dir}); no transfer attacks are possible.")
    surrogate = evaluation.load_entry(surrogate_dir)
    work = []
    for label, (row, twin_of, run_dir) in trained.items():
        if row is None:
            continue
        work.append((label, run_dir, False))
        if row.overrides.get("estimator") != "bp":
            work.append((label + "_noisy", run_dir, True))
    evaluated = {}
    bar = keras.utils.Progbar(len(work), unit_name="model")
    for label, run_dir, noisy in work:
        if not os.path.isdir(str(run_dir)):
            evaluated[label] = f"not trained ({run_dir})"
            bar.add(1)
            continue
        path = os.path.join(cache_dir, label + ".json")
        key = _cache_key(settings, run_dir, noisy)
        if os.path.exists(path):
            try:
                cached = checkpoints.read_json(path, {"key": dict, "results": dict})
            except checkpoints.DamagedFileError:
                cached = {}  # a damaged cache entry is measured again
            if cached.get("key") == key:
                evaluated[label] = cached["results"]
                bar.add(1)
                continue
        try:
            entry = evaluation.load_entry(run_dir)
            if noisy:
                entry = evaluation.ModelEntry(label, evaluation.group_of(label), evaluation.NoisyPrediction(entry.model, settings.noisy_passes), entry.config, run_dir)
            try:
                evaluated[label] = _evaluate_one(entry, x, y, settings, surrogate, samples)
            finally:
                if set(samples) - known:
                    report.save_samples(samples, x, y, samples_dir)
                    known = set(samples)
            checkpoints.write_json(path, {"key": key, "results": evaluated[label]})
        except (ValueError, OSError, RuntimeError, tf.errors.OpError) as error:
            evaluated[label] = f"{type(error).__name__}: {error}"
            say(f"\nevaluating {label} failed: {error}")
        bar.add(1)
    return evaluated, samples, surrogate


def reproduce(settings, out="reproduction", command=None, say=print):
    """Trains, evaluates and writes out/REPORT.md; returns the report's path.

    Raises runs.RunError (unwritable `out`), ValueError (bad settings) or
    DataUnavailableError (unknown or missing dataset) before any training.
    """
    started = time.time()
    runs.ensure_writable(out, what="the output folder ", hint="Choose a writable --out.")
    x, y = _load_test_set(settings)  # fails early for an unknown dataset
    checkpoints.write_json(os.path.join(out, "settings.json"), settings.to_json())
    say(f"Training {len(row_configs(settings)) + 1} runs into {os.path.join(out, 'runs')} (finished runs are skipped)")
    trained = _train_all(settings, out, say)
    say(f"Evaluating on {len(x)} test examples (cached in {os.path.join(out, 'evaluations')})")
    evaluated, samples, surrogate = _evaluate_all(settings, out, trained, x, y, say)
    good = [results for results in evaluated.values() if isinstance(results, dict)]
    merged = _merge(good) if good else None
    configs = {}
    for label, (_, _, run_dir) in trained.items():
        if os.path.isdir(str(run_dir)) and os.path.exists(os.path.join(run_dir, "config.json")):
            runs.read_config(run_dir)  # a damaged config.json is named, not a trace
            configs[label] = checkpoints.read_json(os.path.join(run_dir, "config.json"))
            configs[label + "_noisy"] = configs[label]
    if merged is not None:
        merged["surrogate"] = surrogate.label
        merged["surrogate_clean"] = evaluation.accuracy(surrogate.model, x, y)
        report.write(merged, samples, x, y, configs, os.path.join(out, "evaluation"),
                               first_model_predict=lambda t: evaluation.predict_scores(surrogate.model, t))
    text = render_report(settings, trained, evaluated, merged, configs, len(x), time.time() - started, command)
    path = os.path.join(out, "REPORT.md")
    with open(path, "w") as f:
        f.write(text)
    return path


# The report ------------------------------------------------------------------


def _cells(evaluated, labels, getter):
    """SeedSummary of getter(results) over the labels that have results."""
    values = []
    for label in labels:
        results = evaluated.get(label)
        if isinstance(results, dict):
            try:
                values.append(getter(results, label))
            except KeyError:
                pass
    return seed_statistics.summarize(values)


def _columns(eps, corruptions=CORRUPTIONS, radii=evaluation.RADII):
    """(name, getter) for every measurement, in report order."""
    head = str(HEADLINE_EPS)
    columns = [
        ("clean", lambda r, l: r["clean"][l]),
        ("L-BFGS", lambda r, l: r["attacks"]["lbfgs"]["min"][l]),
        (f"FGSM {head}", lambda r, l: r["attacks"]["fgsm"][head][l]),
    ]
    for name in corruptions:
        columns.append((name.replace("_", " "), lambda r, l, n=name: r["corruption_means"][n][l]))
    columns.append(("corruptions mean", lambda r, l: r["corruption_overall"][l]))
    columns.append((f"PGD {head}", lambda r, l: r["attacks"]["pgd"][head][l]))
    columns.append((f"SPSA {head}", lambda r, l: r["attacks"]["spsa"][head][l]))
    columns.append((f"Square {head}", lambda r, l: r["attacks"]["square"][head][l]))
    for i, radius in enumerate(radii):
        columns.append((f"certified {radius}", lambda r, l, i=i: r["certified"][l]["accuracy"][i]))
    columns.append((f"white-box PGD {head}", lambda r, l: r["attacks"]["pgd-whitebox"][head][l]))
    for e in eps:
        if str(e) != head:
            columns.append((f"FGSM {e}", lambda r, l, e=str(e): r["attacks"]["fgsm"][e][l]))
    return columns


def _labels_by_group(trained, suffix=""):
    """{group: [labels]}; with suffix "_noisy" only the noise-trained runs."""
    groups = {}
    for label, (row, twin_of, _) in trained.items():
        noise_trained = row is not None and (twin_of is not None or row.overrides.get("estimator") != "bp")
        if row is not None and (noise_trained or not suffix):
            groups.setdefault(evaluation.group_of(label) + suffix, []).append(label + suffix)
    return groups


def _failures(trained, evaluated, labels):
    problems = []
    for label in labels:
        base = label[: -len("_noisy")] if label.endswith("_noisy") else label
        if base in trained and not os.path.isdir(str(trained[base][2])):
            problems.append(f"{base}: training failed: {trained[base][2]}")
        elif isinstance(evaluated.get(label), str):
            problems.append(f"{label}: evaluation failed: {evaluated[label]}")
    return problems


def _cell(summary):
    return "failed" if summary.n == 0 else str(summary)


def _training_words(settings, examples):
    """The report's paragraph on the data, the networks and their training."""
    suite = settings.suite_spec
    shape = "flat, 196 inputs" if suite.flatten else "images of 14x14x1"
    chosen = [row for row in suite.rows if row.key in settings.rows]
    arches = dict.fromkeys(row.overrides.get("arch", suite.base.get("arch", "mlp")) for row in chosen)
    network = " and ".join(suite.network[arch] for arch in arches)
    if suite.name != "mlp":
        network += ", each with that command's defaults"
    words = (f"Data: {settings.dataset} at 14x14 ({shape}), the same split for every run; {examples} test examples "
             f"measured. Network: {network}. Training: {settings.optimizer} at learning rate "
             f"{settings.learning_rate}, batch {settings.batch_size}, {settings.epochs} epochs")
    other = [f"{row.epochs_of(settings.epochs)} for {row.title}" for row in chosen if row.epochs != 1]
    words += f" ({'; '.join(other)})" if other else ""
    words += (f", K = {settings.copies} copies, noise standard deviation {settings.sigma}, {settings.seeds} seed(s) "
              "per row (mean ± standard deviation).")
    if suite.name == "cnn":
        cnn = _CNN
        words += (f" GLR rows use the CNN's estimator defaults ({cnn['schedule']} schedule, antithetic pairs, "
                  f"{cnn['injection']} injection shared {':'.join(map(str, cnn['copy_split']))} among the layers); "
                  "their twins inject noise at every layer with the same K. The step row converts the BP ReLU CNN of "
                  "the same seed to step units (`glr-train --init-from RUN --activation step`) and fine-tunes it; its "
                  "twin fine-tunes the same start by bp-ste.")
        if "glr_resnet" in settings.rows:
            resnet = run_config.ARCH_DEFAULTS["resnet"]
            words += (f" The GLR resnet row and its twin use the `--arch resnet` defaults, K = {resnet['copies']} shared "
                      f"{':'.join(map(str, resnet['copy_split']))} among its layers.")
    if suite.paper:
        words += " The paper: SGD at 0.1, batch 25, 12 (24) epochs, K = 10000, sigma = 2."
    return words + " Every number below was computed by the run that wrote this file."


def render_report(settings, trained, evaluated, merged, configs, examples, seconds, command):
    """REPORT.md: the paper's tables beside ours, the controls, failures, plots."""
    suite = settings.suite_spec
    columns = dict(_columns(settings.eps, suite.corruptions, suite.radii))
    groups = _labels_by_group(trained)
    noisy_groups = _labels_by_group(trained, "_noisy")
    rows = [row for row in suite.rows if row.key in settings.rows]
    lines = [f"# {suite.title}", ""]
    lines += [
        f"Produced by `{command or 'glr-reproduce'}` on {time.strftime('%Y-%m-%d')}: "
        f"{platform.machine()} with {os.cpu_count()} CPU cores, Python {platform.python_version()}, "
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}; {seconds / 60:.1f} minutes in all "
        "(a re-run only counts what it had to redo).",
        "",
        _training_words(settings, examples),
        "",
        f"Attacks: FGSM, PGD (20 steps) and L-BFGS are transfer attacks crafted once on "
        f"{suite.surrogate_words} (its clean accuracy: {merged['surrogate_clean']:.3f})."
        if merged else "Attacks: no model could be evaluated.",
        f"White-box attacks on each model itself, on the first {settings.whitebox_examples} test examples: PGD "
        "(20 steps) through BPDA gradients (step units pass the gradient straight through) and, for noisy "
        f"prediction, EOT over {evaluation.Plan().eot_samples} noisy passes; and SPSA (gradient-free, 20 steps "
        "of 64 queries) and Square Attack (random search, 1000 queries), which query the prediction itself. SPSA's finite differences see the piecewise-"
        "constant output of a step network as flat almost everywhere, so for threshold units its number is "
        "an upper bound; white-box PGD is the stronger test there. Epsilons are L-inf radii on pixels in [0, 1]; L-BFGS finds a minimal "
        "perturbation per example. Corruptions: mean accuracy over five severities (paper Eq. 6)"
        + ("." if suite.corruptions == CORRUPTIONS else f"; the paper's four and the rest of the MNIST-C set ({len(suite.corruptions)} in all)."),
        "",
    ]

    def table(title, names, paper, keys_rows, intro=None):
        out = [f"## {title}", ""]
        if intro:
            out += [intro, ""]
        header = "| row | seeds | " + " | ".join(f"{n} | paper" if paper else n for n in names) + " |"
        out += [header, "|---|---|" + "---|" * (len(names) * (2 if paper else 1))]
        for title_, key, labels in keys_rows:
            cells = []
            for i, name in enumerate(names):
                cells.append(_cell(_cells(evaluated, labels, columns[name])))
                if paper:
                    cells.append(f"{paper[key][i]:.2f}" if key in paper else "—")
            seeds = sum(1 for label in labels if isinstance(evaluated.get(label), dict))
            out.append(f"| {title_} | {seeds} | " + " | ".join(cells) + " |")
        return out + [""]

    table_rows = [(row.title, row.key, groups.get(row.key, [])) for row in rows]
    if suite.paper:
        lines += table("Table I: clean, L-BFGS and FGSM accuracy", ["clean", "L-BFGS", f"FGSM {HEADLINE_EPS}"], PAPER_TABLE_I, table_rows,
                       "Deterministic prediction. The paper's column beside each of ours.")
        lines += table("Table II: corruptions", [n.replace("_", " ") for n in CORRUPTIONS], PAPER_TABLE_II, table_rows)
    else:
        lines += table("Table I: clean, L-BFGS and FGSM accuracy", ["clean", "L-BFGS", f"FGSM {HEADLINE_EPS}"], None, table_rows,
                       "Deterministic prediction; the paper has no conv nets, so there is no paper column.")
        lines += table("Table II: corruptions", [n.replace("_", " ") for n in CORRUPTIONS] + ["corruptions mean"], None, table_rows,
                       f"The paper's four; \"corruptions mean\" averages all {len(suite.corruptions)} (the next table).")
        lines += table("MNIST-C corruptions", [n.replace("_", " ") for n in suite.corruptions if n not in CORRUPTIONS], None, table_rows,
                       "Mean accuracy over five severities of each MNIST-C corruption (Mu and Gilmer, 2019) beyond the paper's four.")
    lines += table("More attacks", [f"PGD {HEADLINE_EPS}", f"white-box PGD {HEADLINE_EPS}", f"SPSA {HEADLINE_EPS}", f"Square {HEADLINE_EPS}"] + [f"FGSM {e}" for e in settings.eps if str(e) != str(HEADLINE_EPS)]
                   + ["corruptions mean"], None, table_rows)

    # Fair controls: each GLR row against its BP twin.
    compare = ["clean", "L-BFGS", f"FGSM {HEADLINE_EPS}", f"PGD {HEADLINE_EPS}", f"white-box PGD {HEADLINE_EPS}", f"SPSA {HEADLINE_EPS}",
               f"Square {HEADLINE_EPS}", "corruptions mean"]
    twin_lines = []
    for row in rows:
        twin_labels = groups.get(f"{row.key}_twin")
        if not twin_labels:
            continue
        estimator = twins.twin_estimator(row.overrides.get("activation"), row.overrides.get("loss", "ce"))
        ours = []
        for name in compare:
            a = _cells(evaluated, groups.get(row.key, []), columns[name])
            b = _cells(evaluated, twin_labels, columns[name])
            mark = " *" if seed_statistics.significant(a, b) else ""
            ours.append(f"{_cell(a)} / {_cell(b)}{mark}")
        twin_lines.append(f"| {row.title} | {estimator} | " + " | ".join(ours) + " |")
    if twin_lines:
        lines += ["## Controls the paper lacks: GLR against BP with the same noise", "",
                  "Each cell: GLR / its BP twin (same noise, optimizer, learning rate, epochs, batch and "
                  "seed; estimator bp-noise, or bp-ste with straight-through step units and cross-entropy "
                  "in place of the 0-1 loss for the gradient). This separates what the noise during "
                  "training does from what the GLR estimator does. " + seed_statistics.RULE, "",
                  "| row | twin | " + " | ".join(compare) + " |", "|---|---|" + "---|" * len(compare)]
        lines += twin_lines + [""]
        lines += _verdict_lines(rows, groups, evaluated, columns, compare)

    noisy_lines = []
    for title_, key in [(row.title, row.key) for row in rows] + [(f"{row.title}, BP twin", f"{row.key}_twin") for row in rows]:
        if key + "_noisy" not in noisy_groups:
            continue
        det = [_cell(_cells(evaluated, groups.get(key, []), columns[n])) for n in compare]
        noisy = [_cell(_cells(evaluated, noisy_groups[key + "_noisy"], columns[n])) for n in compare]
        noisy_lines.append(f"| {title_} | deterministic | " + " | ".join(det) + " |")
        noisy_lines.append(f"| {title_} | noisy ({settings.noisy_passes} passes) | " + " | ".join(noisy) + " |")
    if noisy_lines:
        lines += ["## Deterministic against noisy prediction", "",
                  f"Noisy prediction averages the class probabilities of {settings.noisy_passes} noisy forward "
                  "passes (the SavedModel's `serve_noisy`). Transfer inputs are the same for both; SPSA "
                  "attacks each prediction itself.", "",
                  "| row | prediction | " + " | ".join(compare) + " |", "|---|---|" + "---|" * len(compare)]
        lines += noisy_lines + [""]

    lines += _certified_section(settings, rows, groups, evaluated, columns, merged)
    lines += _checklist_section(rows, groups, noisy_groups, evaluated, settings)

    all_labels = [label for labels in list(groups.values()) + list(noisy_groups.values()) for label in labels]
    problems = _failures(trained, evaluated, all_labels)
    surrogate_label = surrogate_config(settings).name()
    if surrogate_label in trained and not os.path.isdir(str(trained[surrogate_label][2])):
        problems.insert(0, f"{surrogate_label}: training failed: {trained[surrogate_label][2]}")
    lines += ["## Failed rows", ""]
    lines += [f"- {p}" for p in problems] if problems else ["None: every run trained and was evaluated."]
    lines += [""]
    if merged is not None:
        lines += ["## Files", "",
                  "- `evaluation/results.csv`, `evaluation/results.json`: every model and seed, every measurement;",
                  "- `evaluation/results.md`: the same as one table;",
                  "- `runs/<run>/`: each training (model, SavedModel, log, curves, run.json);",
                  "- `samples/samples.npz`: the transfer-attack and corrupted inputs, reusable with `glr-evaluate --samples-from`.",
                  "", "![accuracy against epsilon](evaluation/accuracy_vs_eps.png)", "",
                  "![adversarial examples](evaluation/adversarial_examples.png)", "",
                  "![corruptions](evaluation/corruptions.png)", ""]
    return "\n".join(lines)


def _verdict_lines(rows, groups, evaluated, columns, compare):
    """Per GLR row: where it is more and where less robust than its twin (seeds rule), with the checklist's flags."""
    out = ["What the controls say, row by row (from the table above, by the rule stated there):", ""]
    for row in rows:
        glr, twin = groups.get(row.key, []), groups.get(f"{row.key}_twin")
        if not twin:
            continue
        better, worse = {}, {}  # measurement -> "GLR against twin"
        for name in compare:
            a, b = _cells(evaluated, glr, columns[name]), _cells(evaluated, twin, columns[name])
            if seed_statistics.significant(a, b):
                (better if a.mean > b.mean else worse)[name] = f"{name} ({a.mean:.3f} against {b.mean:.3f})"
        robust = set(better) - {"clean"}
        seeds = min(sum(isinstance(evaluated.get(label), dict) for label in labels) for labels in (glr, twin))
        if seeds < 2:
            verdict = "not decided: the rule needs at least two seeds on each side"
        elif robust and not worse:
            verdict = "GLR's advantage over its twin holds"
        elif robust:
            verdict = "mixed: GLR is ahead on some measurements and behind on others"
        else:
            verdict = "no advantage for GLR"
        flags = sorted({f"{flag} ({label})" for label in glr + twin if isinstance(evaluated.get(label), dict)
                        for flag in evaluated[label].get("checklist", {}).get(label, {}).get("flags", [])})
        words = f"- **{row.title}**: {verdict}. "
        words += f"Ahead: {', '.join(better.values())}. " if better else "Ahead nowhere. "
        words += f"Behind: {', '.join(worse.values())}. " if worse else "Behind nowhere. "
        words += ("Checklist flags (white-box numbers of these models are loose upper bounds): " + ", ".join(flags) + "."
                  if flags else "No checklist flag on either side.")
        out.append(words)
    return out + [""]


def _certified_section(settings, rows, groups, evaluated, columns, merged):
    """Certified accuracy of every row and twin at the radii, GLR against twin by the seeds rule."""
    names = [f"certified {r}" for r in settings.suite_spec.radii]
    body = []
    for row in rows:
        for title, key, twin_key in ((row.title, row.key, f"{row.key}_twin"), (f"{row.title}, BP twin", f"{row.key}_twin", None)):
            labels = groups.get(key)
            if not labels:
                continue
            twin = groups.get(twin_key) if twin_key else None
            norms = sorted({evaluated[l]["certified"][l].get("norm", "?") for l in labels if isinstance(evaluated.get(l), dict) and l in evaluated[l].get("certified", {})})
            cells = []
            for name in names:
                a = _cells(evaluated, labels, columns[name])
                mark = " *" if twin and seed_statistics.significant(a, _cells(evaluated, twin, columns[name])) else ""
                cells.append(_cell(a) + mark)
            median = _cells(evaluated, labels, lambda r, l: r["certified"][l]["median_radius"])
            opnorm = _cells(evaluated, labels, lambda r, l: r["certified"][l]["operator_norm"])
            body.append(f"| {title} | {', '.join(norms) or '—'} | {_cell(opnorm)} | " + " | ".join(cells) + f" | {_cell(median)} |")
    if not body:
        return []
    n = min(settings.certify_examples, settings.examples or settings.certify_examples)
    return [
        "## Certified robustness (randomized smoothing)", "",
        f"Certified accuracy of each model's smoothed classifier on the first {n} test examples, "
        f"{settings.certify_samples} noisy draws per example (plus 100 to choose the class), alpha = {settings.alpha}; "
        "radii are in input space, on pixels in [0, 1] (l2 for Gaussian noise, l1 for Laplace). The first layer's "
        "operator norm (the upper bound the radii are divided by) and the median radius of the correctly "
        "certified examples are shown. A row marked * differs from its BP twin by the rule above.", "",
        report.CERTIFICATE_TEXT, "",
        "| row | norm | operator norm | " + " | ".join(f"r = {r}" for r in settings.suite_spec.radii) + " | median radius |",
        "|---|---|---|" + "---|" * (len(names) + 1),
    ] + body + ["", "![certified accuracy against radius](evaluation/certified_accuracy.png)", ""]


def _checklist_section(rows, groups, noisy_groups, evaluated, settings):
    """The checklist's flags per row and prediction, and the words that follow from them."""
    from keras_glr.robustness import checklist

    body, flagged = [], []
    entries = [(row.title, row.key) for row in rows] + [(f"{row.title}, BP twin", f"{row.key}_twin") for row in rows]
    for title, key in entries:
        for prediction, labels in (("deterministic", groups.get(key)), ("noisy", noisy_groups.get(key + "_noisy"))):
            found = [evaluated[l]["checklist"][l] for l in labels or [] if isinstance(evaluated.get(l), dict) and l in evaluated[l].get("checklist", {})]
            if not found:
                continue
            cells = []
            for name in checklist.CHECKS:
                failed = sum(name in f["flags"] for f in found)
                ran = sum(name in f["checks"] for f in found)
                cells.append("—" if not ran else "ok" if not failed else f"FLAG ({failed} of {ran} seeds)")
            if any(f["flags"] for f in found):
                flagged.append(f"{title} ({prediction})")
            body.append(f"| {title} | {prediction} | " + " | ".join(cells) + " |")
    if not body:
        return []
    if flagged:
        verdict = (f"Flagged: {', '.join(flagged)}. For these the white-box attack did not behave as a working attack "
                   "should, so their white-box and SPSA/Square numbers are loose upper bounds and the robustness they "
                   "suggest is not established; the certified accuracy above is the number that holds.")
    else:
        verdict = ("No model failed a check: for every row the white-box attack drives accuracy toward chance, beats "
                   "the single-step and the transfer attack example by example, and has converged, so its numbers "
                   "are as tight as this attack can make them.")
    return [
        "## Evaluation checklist (Carlini et al. 2019)", "",
        f"Run on white-box PGD at eps {HEADLINE_EPS} for every model, on the first {settings.whitebox_examples} test "
        "examples: *falls to chance*: accuracy does not rise with eps (0.05 to 0.5) and reaches chance + 0.1 at 0.5; "
        "*iterative*: PGD fools all but 5% of the examples FGSM fools; *white-box*: white-box PGD fools all but 5% "
        "of the examples transfer PGD fools; *converged*: 100 steps with 3 restarts lower accuracy by at most 0.05 (or two standard errors of the accuracy, when more).", "",
        "| row | prediction | " + " | ".join(checklist.CHECKS) + " |", "|---|---|" + "---|" * len(checklist.CHECKS),
    ] + body + ["", verdict, ""]
