"""Training curves, and the one way the package draws: Matplotlib, no screen needed.

The robustness figures live beside the robustness package (robustness/figures.py).
"""

import csv
import os


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def read_log(csv_path):
    """Reads a Keras CSVLogger file into {column: [float per epoch]}."""
    if not os.path.exists(csv_path):
        return {}
    columns = {}
    with open(csv_path) as f:
        for row in csv.DictReader(f):
            for key, value in row.items():
                try:
                    columns.setdefault(key, []).append(float(value))
                except (TypeError, ValueError):
                    pass
    return columns


def plot_training_curves(history, png_path, title=""):
    """Loss and accuracy against epoch, train and validation, side by side.

    Args:
        history: {metric: values per epoch}, e.g. from `read_log` or
            `History.history`; keys "loss", "accuracy", "val_loss", ...
        png_path: where to write the PNG.
    """
    plt = pyplot()
    epochs = history.get("epoch") or list(range(len(history.get("loss", []))))
    epochs = [e + 1 for e in epochs]
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, metric in zip(axes, ("loss", "accuracy")):
        for prefix, label in (("", "train (noisy copies)"), ("val_", "validation")):
            values = history.get(prefix + metric)
            if values:
                axis.plot(epochs[: len(values)], values, marker="o", label=label)
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(png_path, dpi=100)
    plt.close(figure)
    return png_path
