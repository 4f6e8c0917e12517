"""Write an evaluation: Markdown table (models as rows), CSV, JSON, plots.

Rows are groups of runs that differ only in their seed: each cell shows the
mean ± standard deviation over the seeds. A GLR row and its BP twin (same
configuration, estimator bp-noise or bp-ste) are compared cell by cell with
`keras_glr._src.seed_statistics.RULE`; a significant difference is marked "*".
"""

import csv
import json
import os

import numpy as np

from keras_glr._src import seed_statistics
from keras_glr.robustness import figures


def columns(results):
    """(column name, {label: value}) pairs in table order."""
    cols = [("clean", results["clean"])]
    for name, by_eps in results["attacks"].items():
        for eps, per_model in by_eps.items():
            cols.append((f"{name} {'' if eps == 'min' else eps}".strip(), per_model))
    for name, per_model in results.get("corruption_means", {}).items():
        cols.append((name, per_model))
    if "corruption_overall" in results:
        cols.append(("corruptions mean", results["corruption_overall"]))
    certified = results.get("certified", {})
    radii = next((c["radii"] for c in certified.values() if "radii" in c), [])
    for i, radius in enumerate(radii):
        values = {label: c["accuracy"][i] if "accuracy" in c else float("nan") for label, c in certified.items()}
        cols.append((f"certified {radius}", values))
    return cols


def grouped_rows(results, configs):
    """[(group, [label...], {column: SeedSummary})] in first-seen order."""
    groups = {}
    for label in results["models"]:
        groups.setdefault(results["groups"][label], []).append(label)
    rows = []
    for group, labels in groups.items():
        cells = {
            name: seed_statistics.summarize([values.get(l, float("nan")) for l in labels])
            for name, values in columns(results)
        }
        rows.append((group, labels, cells))
    return rows


def twin_pairs(rows, configs):
    """{glr group: twin group} for rows whose configurations differ only in the estimator."""

    def key(label):
        config = dict(configs.get(label) or {})
        if not config:
            return None
        return json.dumps(
            {k: v for k, v in config.items() if k not in ("estimator", "seed", "run_name", "ste_slope", "data_dir")},
            sort_keys=True,
        )

    pairs = {}
    for group, labels, _ in rows:
        config = configs.get(labels[0]) or {}
        if config.get("estimator") != "glr":
            continue
        for other, other_labels, _ in rows:
            other_config = configs.get(other_labels[0]) or {}
            if other_config.get("estimator") in ("bp-noise", "bp-ste") and key(labels[0]) == key(other_labels[0]):
                pairs[group] = other
    return pairs


def markdown_table(results, configs):
    """The results as a Markdown table: models as rows (seeds grouped as mean ± std), `*` where a GLR row differs from
    its twin by the seeds rule."""
    rows = grouped_rows(results, configs)
    pairs = twin_pairs(rows, configs)
    by_group = {group: cells for group, _, cells in rows}
    names = [name for name, _ in columns(results)]
    lines = ["| model | seeds | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for group, labels, cells in rows:
        twin = by_group.get(pairs.get(group))
        shown = []
        for name in names:
            text = str(cells[name])
            if twin is not None and seed_statistics.significant(cells[name], twin[name]):
                text += " *"
            shown.append(text)
        lines.append(f"| {group} | {len(labels)} | " + " | ".join(shown) + " |")
    notes = [
        "",
        f"Accuracy on {results['examples']} test examples; mean ± standard deviation over seeds.",
        f"Attacks: {results['mode']}"
        + (f", crafted on {results['surrogate']}" if results.get("surrogate") else ", BPDA/EOT on each model")
        + ".",
    ]
    if results.get("corruption_means"):
        notes.append("Corruption columns: mean accuracy over the five severities (paper Eq. 6).")
    if pairs:
        notes.append(
            "Twins compared: " + ", ".join(f"{g} vs {t}" for g, t in pairs.items()) + ". " + seed_statistics.RULE
        )
    notes += certified_notes(results) + checklist_lines(results)
    return "\n".join(lines + notes) + "\n"


CERTIFICATE_TEXT = (
    "A certificate is a proof about the smoothed classifier, the model's noisy prediction with its majority "
    "vote over the noise: with probability at least 1 - alpha per example, no input perturbation within the "
    "radius (l2 for Gaussian noise, Cohen et al. 2019; l1 for Laplace noise, Teng et al. 2020) changes its "
    "class. It assumes only that the noise at the first noisy layer is what the model draws (independent, of "
    "the stated scale) and that the radius is divided by an upper bound on that layer's operator norm; it says "
    "nothing about the deterministic prediction, and no attack can lower it. Certified accuracy at radius r is "
    "the share of examples the smoothed classifier gets right with a certificate of at least r (abstentions "
    "count as wrong)."
)


def certified_curves(results):
    """{group: (norm, radii, mean accuracy, std over seeds or None)} for the certified-accuracy plot."""
    by_group = {}
    for label, found in results.get("certified", {}).items():
        if "accuracy" in found:
            by_group.setdefault(results["groups"].get(label, label), []).append(found)
    curves = {}
    for group, found in by_group.items():
        values = np.array([f["accuracy"] for f in found])
        spread = values.std(axis=0, ddof=1) if len(found) > 1 else None
        curves[group] = (found[0]["norm"], found[0]["radii"], values.mean(axis=0), spread)
    return curves


def certified_notes(results):
    """The lines that explain the certified columns (draws, alpha, what a certificate assumes), and any model left
    uncertified with its error."""
    certified = results.get("certified")
    if not certified:
        return []
    done = [c for c in certified.values() if "accuracy" in c]
    errors = {label: c["error"] for label, c in certified.items() if "error" in c}
    lines = []
    if done:
        first = done[0]
        norms = sorted({c["norm"] for c in done})
        lines.append(
            f"Certified columns: certified accuracy at each input-space radius ({' or '.join(norms)}), "
            f"{first['samples']} noisy draws per example, alpha = {first['alpha']}. " + CERTIFICATE_TEXT
        )
    lines += [f"No certificate for {label}: {error}" for label, error in errors.items()]
    return lines


def checklist_lines(results):
    """The checklist's verdict per model, and what it means for the table."""
    from keras_glr.robustness import checklist

    found = results.get("checklist")
    if not found:
        return []
    lines = ["", f"Checklist (Carlini et al. 2019) of white-box PGD at eps {next(iter(found.values()))['eps']}:"]
    for label, result in found.items():
        failed = "; ".join(result["checks"][name]["detail"] for name in result["flags"])
        lines.append(f"- {label}: {checklist.flag_text(result)}" + (f" ({failed})" if failed else ""))
    lines.append(checklist.verdict([label for label, result in found.items() if result["flags"]]))
    return lines


def write(results, samples, x, y, configs, out, first_model_predict=None):
    """Writes results.md, results.csv, results.json and the PNG plots into `out`."""
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write("# Robustness evaluation\n\n" + markdown_table(results, configs))
    with open(os.path.join(out, "results.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        cols = columns(results)
        writer.writerow(["model", "group"] + [name for name, _ in cols])
        for label in results["models"]:
            writer.writerow(
                [label, results["groups"][label]] + [f"{values.get(label, float('nan')):.4f}" for _, values in cols]
            )
    written = ["results.md", "results.csv", "results.json"]
    if any(eps != "min" for by_eps in results["attacks"].values() for eps in by_eps):
        figures.plot_accuracy_vs_eps(results, os.path.join(out, "accuracy_vs_eps.png"))
        written.append("accuracy_vs_eps.png")
    adversarial = {k: v for k, v in samples.items() if "@" in k and k.split("@")[0] in results["attacks"]}
    if adversarial:
        figures.plot_adversarial_grid(
            x, adversarial, os.path.join(out, "adversarial_examples.png"), predict=first_model_predict
        )
        written.append("adversarial_examples.png")
    if any("accuracy" in c for c in results.get("certified", {}).values()):
        figures.plot_certified_accuracy(certified_curves(results), os.path.join(out, "certified_accuracy.png"))
        written.append("certified_accuracy.png")
    if results["corruptions"]:
        figures.plot_corruption_grid(
            x[0], list(results["corruptions"]), os.path.join(out, "corruptions.png"), seed=results["seed"]
        )
        written.append("corruptions.png")
    return written


def save_samples(samples, x, y, folder):
    """Saves crafted and corrupted inputs (and the clean ones) to folder/samples.npz."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "samples.npz")
    np.savez_compressed(path, __x__=x, __y__=y, **{k: v for k, v in samples.items()})
    return path


def load_samples(folder, x, y):
    """Loads samples saved by `save_samples`; they must be for the same inputs."""
    path = os.path.join(folder, "samples.npz")
    if not os.path.exists(path):
        raise FileNotFoundError(f"No samples.npz in {folder}; write one first with --save-samples.")
    stored = np.load(path)
    if (
        stored["__x__"].shape != x.shape
        or not np.array_equal(stored["__x__"], x)
        or not np.array_equal(stored["__y__"], y)
    ):
        raise ValueError(
            f"The samples in {folder} were made from other test inputs; use the same --examples, dataset and seed."
        )
    return {k: stored[k] for k in stored.files if not k.startswith("__")}
