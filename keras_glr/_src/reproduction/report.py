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
from keras_glr._src.reproduction import sections
from keras_glr._src.reproduction.protocol import CORRUPTIONS
from keras_glr._src.reproduction.protocol import HEADLINE_EPS
from keras_glr._src.reproduction.protocol import PAPER_TABLE_I
from keras_glr._src.reproduction.protocol import PAPER_TABLE_II
from keras_glr._src.reproduction.sections import cell
from keras_glr._src.twins import twin_estimator
from keras_glr.robustness import evaluation


def _labels_by_group(trained, suffix=""):
    """{group: [labels]}; with suffix "_noisy" only the noise-trained runs."""
    groups = {}
    for label, (row, twin_of, _) in trained.items():
        noise_trained = row is not None and (twin_of is not None or row.trains_with_noise)
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


def render(settings, trained, evaluations, merged, configs, examples, seconds, command):
    """REPORT.md: the paper's tables beside ours, the controls, failures, plots."""
    suite = settings.suite_spec
    plans = protocol.plans(settings)
    columns = results.columns(plans, suite.corruptions, suite.radii)
    attack_columns = results.attack_columns(plans)
    headline = [c.name for c in attack_columns if c.eps in (None, HEADLINE_EPS)]
    table_i = ["clean", results.title("lbfgs", kind="transfer"), results.title("fgsm", HEADLINE_EPS, "transfer")]
    worst = [results.title("ensemble", eps) for eps in plans.worst_case.eps]  # what the verdicts read
    decisive = worst + [f"certified {r}" for r in suite.radii if r > 0]
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
        sections.training_words(settings, examples),
        "",
        f"Attacks: FGSM, PGD (20 steps) and L-BFGS are transfer attacks crafted once on "
        f"{suite.surrogate_words} (its clean accuracy: {merged['surrogate_clean']:.3f})."
        if merged
        else "Attacks: no model could be evaluated.",
        f"White-box attacks on each model itself, on the first {settings.whitebox_examples} test examples: PGD "
        "(20 steps) through BPDA gradients (step units pass the gradient straight through, at the surrogate "
        "slopes of `surrogate_gradients.SLOPES`, the worst per example) and, for noisy "
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
                cells.append(cell(evaluations.summary(labels, columns[name].read)))
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
            "Deterministic prediction. The paper's column beside each of ours. L-BFGS and FGSM are transfer attacks, "
            "crafted on the surrogate as in the paper; the worst case on each model itself is further down.",
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
    others = [n for n in headline if n not in table_i and n not in worst]  # every other attack at the headline eps
    other_eps = [c.name for c in attack_columns if c.eps not in (None, HEADLINE_EPS) and c.attack == "fgsm"]
    lines += table(
        "More attacks",
        others + other_eps + ["corruptions mean"],
        None,
        table_rows,
        "Each attack alone; transfer attacks are crafted on the surrogate (the paper's protocol), the others on "
        "each model itself.",
    )
    lines += table(
        "Worst case: the attack ensemble",
        worst,
        None,
        table_rows,
        "The accuracy on the examples that survive every attack of the ensemble ("
        + sections.ensemble_words()
        + "), on "
        f"the first {settings.whitebox_examples} test examples, deterministic prediction. This is the robust "
        "accuracy the verdicts below read: no single attack's cell can stand in for it.",
    )

    # Fair controls: each GLR row against its BP twin.
    compare = table_i + [results.title("pgd", HEADLINE_EPS, "white-box")] + worst + ["corruptions mean"]
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
            ours.append(f"{cell(a)} / {cell(b)}{mark}")
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
        lines += _verdict_lines(rows, groups, evaluations, columns, compare, decisive)

    noisy_lines = []
    for title_, key in [(row.title, row.key) for row in rows] + [
        (f"{row.title}, BP twin", f"{row.key}_twin") for row in rows
    ]:
        if key + "_noisy" not in noisy_groups:
            continue
        det = [cell(evaluations.summary(groups.get(key, []), columns[n].read)) for n in compare]
        noisy = [cell(evaluations.summary(noisy_groups[key + "_noisy"], columns[n].read)) for n in compare]
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

    lines += sections.certified_section(settings, rows, groups, evaluations, columns)
    lines += sections.checklist_section(rows, groups, noisy_groups, evaluations, settings)

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


def _verdict_lines(rows, groups, evaluations, columns, compare, decisive):
    """Per GLR row: whether it is more robust than its twin, decided by the seeds rule on the `decisive` measurements
    (the ensemble's worst case and the certificates); the other measurements are listed, not counted."""
    out = [
        "What the controls say, row by row (by the rule stated above). A row's verdict reads the attack ensemble's "
        "worst case and the certified accuracy only; single attacks and transfer attacks are listed beside it but "
        "decide nothing, since the weakest attack's cell can look like an advantage.",
        "",
    ]
    for row in rows:
        glr, twin = groups.get(row.key, []), groups.get(f"{row.key}_twin")
        if not twin:
            continue
        better, worse = {}, {}  # measurement -> "GLR against twin"
        for name in dict.fromkeys(compare + decisive):
            a, b = evaluations.summary(glr, columns[name].read), evaluations.summary(twin, columns[name].read)
            if seed_statistics.significant(a, b):
                (better if a.mean > b.mean else worse)[name] = f"{name} ({a.mean:.3f} against {b.mean:.3f})"
        ahead, behind = set(better) & set(decisive), set(worse) & set(decisive)
        seeds = min(evaluations.seeds(labels) for labels in (glr, twin))
        if seeds < 2:
            verdict = "not decided: the rule needs at least two seeds on each side"
        elif ahead and not behind:
            verdict = "GLR's advantage over its twin holds against the worst case"
        elif ahead:
            verdict = "mixed: against the worst case GLR is ahead at some radii and behind at others"
        else:
            verdict = "no advantage for GLR against the worst case"
        flags = sorted(
            {
                f"{flag} ({label})"
                for label in glr + twin
                for flag in sections.checklist_of(evaluations, label).get("flags", [])
            }
        )
        words = f"- **{row.title}**: {verdict}. "
        words += f"Ahead: {', '.join(better[n] for n in better if n in ahead)}. " if ahead else "Ahead nowhere. "
        words += f"Behind: {', '.join(worse[n] for n in worse if n in behind)}. " if behind else "Behind nowhere. "
        single = [f"ahead on {v}" for n, v in better.items() if n not in ahead]
        single += [f"behind on {v}" for n, v in worse.items() if n not in behind]
        words += f"Single attacks, transfer and clean (not counted): {'; '.join(single)}. " if single else ""
        words += (
            "Checklist flags (white-box numbers of these models are loose upper bounds): " + ", ".join(flags) + "."
            if flags
            else "No checklist flag on either side."
        )
        out.append(words)
    return out + [""]
