"""The sections of REPORT.md beside the tables: the words on the training, the certificates, the checklist."""

from keras_glr._src import seed_statistics
from keras_glr._src.reproduction.protocol import HEADLINE_EPS
from keras_glr._src.run_config import ARCH_DEFAULTS
from keras_glr.robustness import attacks
from keras_glr.robustness import checklist
from keras_glr.robustness import report as evaluation_report


def cell(summary):
    """A table cell: the seeds' summary, or "failed" where no seed was measured."""
    return "failed" if summary.n == 0 else str(summary)


def training_words(settings, examples):
    """The report's paragraph on the data, the networks and their training."""
    suite = settings.suite_spec
    shape = "flat, 196 inputs" if suite.flatten else "images of 14x14x1"
    chosen = [row for row in suite.rows if row.key in settings.rows]
    arches = dict.fromkeys(row.overrides.get("arch", suite.base.get("arch", "mlp")) for row in chosen)
    network = " and ".join(suite.network[arch] for arch in arches)
    if suite.name != "mlp":
        network += ", each with that command's defaults"
    words = (
        f"Data: {settings.dataset} at 14x14 ({shape}), the same split for every run; {examples} test examples "
        f"measured. Network: {network}. Training: {settings.optimizer} at learning rate "
        f"{settings.learning_rate}, batch {settings.batch_size}, {settings.epochs} epochs"
    )
    other = [f"{row.epochs_of(settings.epochs)} for {row.title}" for row in chosen if row.epochs != 1]
    words += f" ({'; '.join(other)})" if other else ""
    words += (
        f", K = {settings.copies} copies, noise standard deviation {settings.sigma}, {settings.seeds} seed(s) "
        "per row (mean ± standard deviation)."
    )
    if suite.name == "cnn":
        cnn = ARCH_DEFAULTS["cnn"]
        words += (
            f" GLR rows use the CNN's estimator defaults ({cnn['schedule']} schedule, antithetic pairs, "
            f"{cnn['injection']} injection shared {':'.join(map(str, cnn['copy_split']))} among the layers); "
            "their twins inject noise at every layer with the same K. The step row converts the BP ReLU CNN of "
            "the same seed to step units (`glr-train --init-from RUN --activation step`) and fine-tunes it; its "
            "twin fine-tunes the same start by bp-ste."
        )
        if "glr_resnet" in settings.rows:
            resnet = ARCH_DEFAULTS["resnet"]
            words += (
                f" The GLR resnet row and its twin use the `--arch resnet` defaults, K = {resnet['copies']} shared "
                f"{':'.join(map(str, resnet['copy_split']))} among its layers."
            )
    if suite.paper:
        words += " The paper: SGD at 0.1, batch 25, 12 (24) epochs, K = 10000, sigma = 2."
    return words + " Every number below was computed by the run that wrote this file."


def certified_section(settings, rows, groups, evaluations, columns):
    """Certified accuracy of every row and twin at the radii, GLR against twin by the seeds rule."""
    names = [f"certified {r}" for r in settings.suite_spec.radii]
    body = []
    for row in rows:
        for title, key, twin_key in (
            (row.title, row.key, f"{row.key}_twin"),
            (f"{row.title}, BP twin", f"{row.key}_twin", None),
        ):
            labels = groups.get(key)
            if not labels:
                continue
            twin = groups.get(twin_key) if twin_key else None
            norms = sorted(
                {
                    certified_of(evaluations, label).get("norm", "?")
                    for label in labels
                    if certified_of(evaluations, label)
                }
            )
            cells = []
            for name in names:
                a = evaluations.summary(labels, columns[name].read)
                mark = (
                    " *"
                    if twin and seed_statistics.significant(a, evaluations.summary(twin, columns[name].read))
                    else ""
                )
                cells.append(cell(a) + mark)
            median = evaluations.summary(labels, lambda m: m.certified()["median_radius"])
            opnorm = evaluations.summary(labels, lambda m: m.certified()["operator_norm"])
            body.append(
                f"| {title} | {', '.join(norms) or '—'} | {cell(opnorm)} | "
                + " | ".join(cells)
                + f" | {cell(median)} |"
            )
    if not body:
        return []
    n = min(settings.certify_examples, settings.examples or settings.certify_examples)
    return (
        [
            "## Certified robustness (randomized smoothing)",
            "",
            f"Certified accuracy of each model's smoothed classifier on the first {n} test examples, "
            f"{settings.certify_samples} noisy draws per example (plus 100 to choose the class), alpha = "
            f"{settings.alpha}; "
            "radii are in input space, on pixels in [0, 1] (l2 for Gaussian noise, l1 for Laplace). The first layer's "
            "operator norm (the upper bound the radii are divided by) and the median radius of the correctly "
            "certified examples are shown. A row marked * differs from its BP twin by the rule above.",
            "",
            evaluation_report.CERTIFICATE_TEXT,
            "",
            "| row | norm | operator norm | "
            + " | ".join(f"r = {r}" for r in settings.suite_spec.radii)
            + " | median radius |",
            "|---|---|---|" + "---|" * (len(names) + 1),
        ]
        + body
        + ["", "![certified accuracy against radius](evaluation/certified_accuracy.png)", ""]
    )


def checklist_section(rows, groups, noisy_groups, evaluations, settings):
    """The checklist's flags per row and prediction, and the words that follow from them."""
    body, flagged = [], []
    entries = [(row.title, row.key) for row in rows] + [(f"{row.title}, BP twin", f"{row.key}_twin") for row in rows]
    for title, key in entries:
        for prediction, labels in (("deterministic", groups.get(key)), ("noisy", noisy_groups.get(key + "_noisy"))):
            found = [checklist_of(evaluations, label) for label in labels or [] if checklist_of(evaluations, label)]
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
    verdict = checklist.verdict(flagged)
    if flagged:
        verdict += " The certified accuracy above is the number that holds."
    return (
        [
            "## Evaluation checklist (Carlini et al. 2019)",
            "",
            f"Run on white-box PGD at eps {HEADLINE_EPS} for every model, on the first {settings.whitebox_examples} "
            "test "
            "examples: *falls to chance*: accuracy does not rise with eps (0.05 to 0.5) and reaches chance + 0.1 at "
            "0.5; "
            "*iterative*: PGD fools all but 5% of the examples FGSM fools; *white-box*: white-box PGD fools all but 5% "
            "of the examples transfer PGD fools; *converged*: 100 steps with 3 restarts lower accuracy by at most "
            "0.05 (or two standard errors of the accuracy, when more).",
            "",
            "| row | prediction | " + " | ".join(checklist.CHECKS) + " |",
            "|---|---|" + "---|" * len(checklist.CHECKS),
        ]
        + body
        + ["", verdict, ""]
    )


def ensemble_words():
    """The ensemble's members, as the report names them."""
    return ", ".join(attacks.get(name).description for name in attacks.ENSEMBLE)


def checklist_of(evaluations, label):
    """`label`'s checklist result, or {} where it has none."""
    found = evaluations.measured(label)
    return (found.checklist() if found else None) or {}


def certified_of(evaluations, label):
    """`label`'s certificate summary, or {} where it has none."""
    found = evaluations.measured(label)
    return found.values.get("certified", {}).get(label, {}) if found else {}
