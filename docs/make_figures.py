"""Regenerates the figures under docs/figures/ from the commands the pages name.

    python docs/make_figures.py                       # everything, about 3 minutes on 2 cores
    python docs/make_figures.py --only variance       # one group: training, robustness, variance

- training: `glr-train --seed 0` (the main job); its training_curves.png.
- robustness: a BP surrogate, the GLR threshold network and its bp-ste twin
  (`glr-train --twin-of`), then `glr-evaluate ... --certify` on 300 test
  digits; its accuracy_vs_eps.png, adversarial_examples.png, corruptions.png
  and certified_accuracy.png.
- variance: the per-layer variance ratios of the CNN at equal wall time, read
  from the first table of docs/guides/variance.md (the numbers that
  `python benchmarks/variance.py` printed) and drawn on a log scale.

Runs are trained in a temporary folder, so saved_models/ is left as it is.
"""

import argparse
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

DOCS = pathlib.Path(__file__).resolve().parent
FIGURES = DOCS / "figures"
GROUPS = ("training", "robustness", "variance")


def run(*command):
    """Runs one command-line app (`python -m keras_glr_apps.<app>`), failing loudly."""
    print("$", " ".join(command), flush=True)
    app = {"glr-train": "train", "glr-evaluate": "evaluate"}[command[0]]
    subprocess.run([sys.executable, "-m", f"keras_glr_apps.{app}", *command[1:]], check=True)


def training(work):
    run("glr-train", "--seed", "0", "--quiet", "--out", str(work), "--run-name", "default")
    shutil.copy(work / "default" / "training_curves.png", FIGURES / "training_curves.png")


def robustness(work):
    out = str(work)
    run(
        "glr-train",
        "--quiet",
        "--out",
        out,
        "--run-name",
        "surrogate",
        "--estimator",
        "bp",
        "--hidden",
        "50,50",
        "--activation",
        "relu",
        "--epochs",
        "10",
    )
    run("glr-train", "--quiet", "--out", out, "--run-name", "glr_step")
    run("glr-train", "--quiet", "--out", out, "--twin-of", str(work / "glr_step"), "--run-name", "twin")
    run(
        "glr-evaluate",
        str(work / "glr_step"),
        str(work / "twin"),
        "--surrogate",
        str(work / "surrogate"),
        "--examples",
        "300",
        "--certify",
        "--certify-samples",
        "2000",
        "--out",
        str(work / "evaluation"),
    )
    for name in ("accuracy_vs_eps", "adversarial_examples", "corruptions", "certified_accuracy"):
        shutil.copy(work / "evaluation" / f"{name}.png", FIGURES / f"{name}.png")


def variance_table(page=DOCS / "guides" / "variance.md"):
    """{option: [equal-time ratio of CNN conv 1, conv 2, logits]} from the page's first variance table."""
    lines = page.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| option | MLP hidden"))
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    columns = [header.index(name) for name in ("CNN conv 1", "CNN conv 2", "CNN logits")]
    table = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        table[cells[0]] = [float(re.split(r",\s*", cells[c])[1]) for c in columns]
    return table


def variance(work):
    from keras_glr._src import plots

    table = variance_table()
    pyplot = plots.pyplot()
    figure, axes = pyplot.subplots(figsize=(8, 6))
    names = list(table)
    for offset, (layer, colour) in enumerate(
        zip(("conv 1", "conv 2", "logits"), ("tab:blue", "tab:orange", "tab:green"))
    ):
        axes.barh(
            [i + 0.27 * (offset - 1) for i in range(len(names))],
            [table[n][offset] for n in names],
            height=0.27,
            label=layer,
            color=colour,
        )
    axes.axvline(1.0, color="black", linewidth=0.8)
    axes.set_xscale("log")
    axes.set_yticks(range(len(names)), names, fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel("variance x time, ratio to the default (injection all, leave-one-out)")
    axes.set_title("CNN at initialisation, K = 100: below 1 is better")
    axes.legend()
    figure.tight_layout()
    figure.savefig(FIGURES / "variance_ratios.png", dpi=100)
    pyplot.close(figure)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=GROUPS, action="append", help="regenerate these groups only (repeatable)")
    args = parser.parse_args()
    FIGURES.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        for group in args.only or GROUPS:
            globals()[group](pathlib.Path(work))
    print(f"figures written to {FIGURES}")


if __name__ == "__main__":
    main()
