"""REPORT.md of a reproduction: the paper's tables beside ours, the fair controls, certificates, the checklist.

Every cell is a `results.Evaluations.summary` over a row's seeds (mean ±
standard deviation); the columns come from the measurement plans
(`results.columns`), and GLR is compared with its twin by the seeds rule
(`seed_statistics`).
"""

import os
import platform
import time

import keras
import tensorflow as tf

from keras_glr._src import seed_statistics
from keras_glr._src.reproduction import protocol
from keras_glr._src.reproduction import results
from keras_glr._src.reproduction.protocol import CORRUPTIONS
from keras_glr._src.reproduction.protocol import HEADLINE_EPS
from keras_glr._src.reproduction.protocol import PAPER_TABLE_I
from keras_glr._src.reproduction.protocol import PAPER_TABLE_II
from keras_glr._src.run_config import ARCH_DEFAULTS
from keras_glr._src.twins import twin_estimator
from keras_glr.robustness import checklist
from keras_glr.robustness import evaluation
from keras_glr.robustness import report as evaluation_report


def _labels_by_group(trained, suffix=""):
    """{group: [labels]}; with suffix "_noisy" only the noise-trained runs."""
    groups = {}
    for label, (row, twin_of, _) in trained.items():
        noise_trained = row is not None and (twin_of is not None or row.overrides.get("estimator") != "bp")
        if row is not None and (noise_trained or not suffix):
            groups.setdefault(evaluation.group_of(label) + suffix, []).append(label + suffix)
    return groups


def _failures(trained, evaluations, labels):
    problems = []
    for label in labels:
        base = label[: -len("_noisy")] if label.endswith("_noisy") else label
        if base in trained and not os.path.isdir(str(trained[base][2])):
            problems.append(f"{base}: training failed: {trained[base][2]}")
        elif evaluations.error(label):
            problems.append(f"{label}: evaluation failed: {evaluations.error(label)}")
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


def render(settings, trained, evaluations, merged, configs, examples, seconds, command):
    """REPORT.md: the paper's tables beside ours, the controls, failures, plots."""
    suite = settings.suite_spec
    plans = protocol.plans(settings)
    columns = results.columns(plans, suite.corruptions, suite.radii)
    headline = [c.name for c in results.attack_columns(plans) if c.eps in (None, HEADLINE_EPS)]
    table_i = ["clean", "L-BFGS", f"FGSM {HEADLINE_EPS}"]  # the paper's Table I
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
        if merged
        else "Attacks: no model could be evaluated.",
        f"White-box attacks on each model itself, on the first {settings.whitebox_examples} test examples: PGD "
        "(20 steps) through BPDA gradients (step units pass the gradient straight through) and, for noisy "
        f"prediction, EOT over {evaluation.Plan().eot_samples} noisy passes; and SPSA (gradient-free, 20 steps "
        "of 64 queries) and Square Attack (random search, 1000 queries), which query the prediction itself. SPSA's "
        "finite differences see the piecewise-"
        "constant output of a step network as flat almost everywhere, so for threshold units its number is "
        "an upper bound; white-box PGD is the stronger test there. Epsilons are L-inf radii on pixels in [0, 1]; "
        "L-BFGS finds a minimal "
        "perturbation per example. Corruptions: mean accuracy over five severities (paper Eq. 6)"
        + (
            "."
            if suite.corruptions == CORRUPTIONS
            else f"; the paper's four and the rest of the MNIST-C set ({len(suite.corruptions)} in all)."
        ),
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
                cells.append(_cell(evaluations.summary(labels, columns[name].read)))
                if paper:
                    cells.append(f"{paper[key][i]:.2f}" if key in paper else "—")
            seeds = evaluations.seeds(labels)
            out.append(f"| {title_} | {seeds} | " + " | ".join(cells) + " |")
        return out + [""]

    table_rows = [(row.title, row.key, groups.get(row.key, [])) for row in rows]
    if suite.paper:
        lines += table(
            "Table I: clean, L-BFGS and FGSM accuracy",
            table_i,
            PAPER_TABLE_I,
            table_rows,
            "Deterministic prediction. The paper's column beside each of ours.",
        )
        lines += table("Table II: corruptions", [n.replace("_", " ") for n in CORRUPTIONS], PAPER_TABLE_II, table_rows)
    else:
        lines += table(
            "Table I: clean, L-BFGS and FGSM accuracy",
            table_i,
            None,
            table_rows,
            "Deterministic prediction; the paper has no conv nets, so there is no paper column.",
        )
        lines += table(
            "Table II: corruptions",
            [n.replace("_", " ") for n in CORRUPTIONS] + ["corruptions mean"],
            None,
            table_rows,
            f'The paper\'s four; "corruptions mean" averages all {len(suite.corruptions)} (the next table).',
        )
        lines += table(
            "MNIST-C corruptions",
            [n.replace("_", " ") for n in suite.corruptions if n not in CORRUPTIONS],
            None,
            table_rows,
            "Mean accuracy over five severities of each MNIST-C corruption (Mu and Gilmer, 2019) beyond the paper's "
            "four.",
        )
    others = [n for n in headline if n not in table_i]  # every other attack at the headline eps
    other_eps = [
        c.name for c in results.attack_columns(plans) if c.eps not in (None, HEADLINE_EPS) and c.attack == "fgsm"
    ]
    lines += table("More attacks", others + other_eps + ["corruptions mean"], None, table_rows)

    # Fair controls: each GLR row against its BP twin.
    compare = table_i + others + ["corruptions mean"]
    twin_lines = []
    for row in rows:
        twin_labels = groups.get(f"{row.key}_twin")
        if not twin_labels:
            continue
        estimator = twin_estimator(row.overrides.get("activation"), row.overrides.get("loss", "ce"))
        ours = []
        for name in compare:
            a = evaluations.summary(groups.get(row.key, []), columns[name].read)
            b = evaluations.summary(twin_labels, columns[name].read)
            mark = " *" if seed_statistics.significant(a, b) else ""
            ours.append(f"{_cell(a)} / {_cell(b)}{mark}")
        twin_lines.append(f"| {row.title} | {estimator} | " + " | ".join(ours) + " |")
    if twin_lines:
        lines += [
            "## Controls the paper lacks: GLR against BP with the same noise",
            "",
            "Each cell: GLR / its BP twin (same noise, optimizer, learning rate, epochs, batch and "
            "seed; estimator bp-noise, or bp-ste with straight-through step units and cross-entropy "
            "in place of the 0-1 loss for the gradient). This separates what the noise during "
            "training does from what the GLR estimator does. " + seed_statistics.RULE,
            "",
            "| row | twin | " + " | ".join(compare) + " |",
            "|---|---|" + "---|" * len(compare),
        ]
        lines += twin_lines + [""]
        lines += _verdict_lines(rows, groups, evaluations, columns, compare)

    noisy_lines = []
    for title_, key in [(row.title, row.key) for row in rows] + [
        (f"{row.title}, BP twin", f"{row.key}_twin") for row in rows
    ]:
        if key + "_noisy" not in noisy_groups:
            continue
        det = [_cell(evaluations.summary(groups.get(key, []), columns[n].read)) for n in compare]
        noisy = [_cell(evaluations.summary(noisy_groups[key + "_noisy"], columns[n].read)) for n in compare]
        noisy_lines.append(f"| {title_} | deterministic | " + " | ".join(det) + " |")
        noisy_lines.append(f"| {title_} | noisy ({settings.noisy_passes} passes) | " + " | ".join(noisy) + " |")
    if noisy_lines:
        lines += [
            "## Deterministic against noisy prediction",
            "",
            f"Noisy prediction averages the class probabilities of {settings.noisy_passes} noisy forward "
            "passes (the SavedModel's `serve_noisy`). Transfer inputs are the same for both; SPSA "
            "attacks each prediction itself.",
            "",
            "| row | prediction | " + " | ".join(compare) + " |",
            "|---|---|" + "---|" * len(compare),
        ]
        lines += noisy_lines + [""]

    lines += _certified_section(settings, rows, groups, evaluations, columns)
    lines += _checklist_section(rows, groups, noisy_groups, evaluations, settings)

    all_labels = [label for labels in list(groups.values()) + list(noisy_groups.values()) for label in labels]
    problems = _failures(trained, evaluations, all_labels)
    surrogate_label = protocol.surrogate_config(settings).name()
    if surrogate_label in trained and not os.path.isdir(str(trained[surrogate_label][2])):
        problems.insert(0, f"{surrogate_label}: training failed: {trained[surrogate_label][2]}")
    lines += ["## Failed rows", ""]
    lines += [f"- {p}" for p in problems] if problems else ["None: every run trained and was evaluated."]
    lines += [""]
    if merged is not None:
        lines += [
            "## Files",
            "",
            "- `evaluation/results.csv`, `evaluation/results.json`: every model and seed, every measurement;",
            "- `evaluation/results.md`: the same as one table;",
            "- `runs/<run>/`: each training (model, SavedModel, log, curves, run.json);",
            "- `samples/samples.npz`: the transfer-attack and corrupted inputs, reusable with `glr-evaluate "
            "--samples-from`.",
            "",
            "![accuracy against epsilon](evaluation/accuracy_vs_eps.png)",
            "",
            "![adversarial examples](evaluation/adversarial_examples.png)",
            "",
            "![corruptions](evaluation/corruptions.png)",
            "",
        ]
    return "\n".join(lines)


def _verdict_lines(rows, groups, evaluations, columns, compare):
    """Per GLR row: where it is more and where less robust than its twin (seeds rule), with the checklist's flags."""
    out = ["What the controls say, row by row (from the table above, by the rule stated there):", ""]
    for row in rows:
        glr, twin = groups.get(row.key, []), groups.get(f"{row.key}_twin")
        if not twin:
            continue
        better, worse = {}, {}  # measurement -> "GLR against twin"
        for name in compare:
            a, b = evaluations.summary(glr, columns[name].read), evaluations.summary(twin, columns[name].read)
            if seed_statistics.significant(a, b):
                (better if a.mean > b.mean else worse)[name] = f"{name} ({a.mean:.3f} against {b.mean:.3f})"
        robust = set(better) - {"clean"}
        seeds = min(evaluations.seeds(labels) for labels in (glr, twin))
        if seeds < 2:
            verdict = "not decided: the rule needs at least two seeds on each side"
        elif robust and not worse:
            verdict = "GLR's advantage over its twin holds"
        elif robust:
            verdict = "mixed: GLR is ahead on some measurements and behind on others"
        else:
            verdict = "no advantage for GLR"
        flags = sorted(
            {f"{flag} ({label})" for label in glr + twin for flag in _checklist(evaluations, label).get("flags", [])}
        )
        words = f"- **{row.title}**: {verdict}. "
        words += f"Ahead: {', '.join(better.values())}. " if better else "Ahead nowhere. "
        words += f"Behind: {', '.join(worse.values())}. " if worse else "Behind nowhere. "
        words += (
            "Checklist flags (white-box numbers of these models are loose upper bounds): " + ", ".join(flags) + "."
            if flags
            else "No checklist flag on either side."
        )
        out.append(words)
    return out + [""]


def _certified_section(settings, rows, groups, evaluations, columns):
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
                {_certified(evaluations, label).get("norm", "?") for label in labels if _certified(evaluations, label)}
            )
            cells = []
            for name in names:
                a = evaluations.summary(labels, columns[name].read)
                mark = (
                    " *"
                    if twin and seed_statistics.significant(a, evaluations.summary(twin, columns[name].read))
                    else ""
                )
                cells.append(_cell(a) + mark)
            median = evaluations.summary(labels, lambda m: m.certified()["median_radius"])
            opnorm = evaluations.summary(labels, lambda m: m.certified()["operator_norm"])
            body.append(
                f"| {title} | {', '.join(norms) or '—'} | {_cell(opnorm)} | "
                + " | ".join(cells)
                + f" | {_cell(median)} |"
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


def _checklist_section(rows, groups, noisy_groups, evaluations, settings):
    """The checklist's flags per row and prediction, and the words that follow from them."""
    body, flagged = [], []
    entries = [(row.title, row.key) for row in rows] + [(f"{row.title}, BP twin", f"{row.key}_twin") for row in rows]
    for title, key in entries:
        for prediction, labels in (("deterministic", groups.get(key)), ("noisy", noisy_groups.get(key + "_noisy"))):
            found = [_checklist(evaluations, label) for label in labels or [] if _checklist(evaluations, label)]
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


def _checklist(evaluations, label):
    """`label`'s checklist result, or {} where it has none."""
    found = evaluations.measured(label)
    return (found.checklist() if found else None) or {}


def _certified(evaluations, label):
    """`label`'s certificate summary, or {} where it has none."""
    found = evaluations.measured(label)
    return found.values.get("certified", {}).get(label, {}) if found else {}
