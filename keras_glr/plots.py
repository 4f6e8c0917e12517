"""Plots people would rather look at than read. Matplotlib, no screen needed."""

import csv
import os

import numpy as np


def _pyplot():
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
    plt = _pyplot()
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


def _as_image(row):
    """A model input (flat or image) as a 2-D or RGB array for imshow."""
    import math

    row = np.asarray(row)
    if row.ndim == 1:
        side = math.isqrt(row.size)
        if side * side == row.size:
            return row.reshape(side, side)
        side = math.isqrt(row.size // 3)
        return row.reshape(side, side, 3)
    return row[..., 0] if row.shape[-1] == 1 else row


def plot_accuracy_vs_eps(results, png_path):
    """One panel per epsilon attack: accuracy against epsilon, a line per model."""
    plt = _pyplot()
    swept = {name: by_eps for name, by_eps in results["attacks"].items() if "min" not in by_eps}
    figure, axes = plt.subplots(1, len(swept), figsize=(4.5 * len(swept), 3.8), squeeze=False)
    for axis, (name, by_eps) in zip(axes[0], swept.items()):
        eps = sorted(float(e) for e in by_eps)
        for label in results["models"]:
            values = [results["clean"][label]] + [by_eps[_eps_key(by_eps, e)][label] for e in eps]
            axis.plot([0.0] + eps, values, marker="o", label=label)
        axis.set_title(f"{name} ({results['mode']})")
        axis.set_xlabel("epsilon")
        axis.set_ylabel("accuracy")
        axis.set_ylim(0, 1)
        axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(png_path, dpi=100)
    plt.close(figure)
    return png_path


def _eps_key(by_eps, value):
    return next(k for k in by_eps if float(k) == value)


def plot_adversarial_grid(x, adversarial, png_path, count=8, predict=None):
    """Clean digits on top, one row per attack below (paper Fig. 6).

    Args:
        x: clean inputs; adversarial: {"attack@eps": inputs}; predict: optional
            function returning class scores, shown as each cell's title.
    """
    plt = _pyplot()
    keys = list(adversarial)
    rows = [("clean", x[:count])] + [(k, adversarial[k][:count]) for k in keys]
    figure, axes = plt.subplots(len(rows), count, figsize=(1.3 * count, 1.4 * len(rows)), squeeze=False)
    for r, (name, images) in enumerate(rows):
        labels = predict(images).argmax(1) if predict is not None else None
        for c in range(min(count, len(images))):
            axis = axes[r][c]
            axis.imshow(_as_image(images[c]), cmap="gray", vmin=0, vmax=1)
            axis.set_xticks([])
            axis.set_yticks([])
            if labels is not None:
                axis.set_title(f"pred {labels[c]}", fontsize=7)
        axes[r][0].set_ylabel(name, fontsize=7)
    figure.tight_layout()
    figure.savefig(png_path, dpi=100)
    plt.close(figure)
    return png_path


def plot_corruption_grid(image, names, png_path, seed=0):
    """One image under every corruption (rows) and severity (columns), paper Fig. 7."""
    from keras_glr.robustness import corruptions

    plt = _pyplot()
    picture = _as_image(image)
    batch = (picture[None, ..., None] if picture.ndim == 2 else picture[None]).astype("float32")
    figure, axes = plt.subplots(len(names), 6, figsize=(7.5, 1.3 * len(names)), squeeze=False)
    for r, name in enumerate(names):
        cells = [batch[0]] + [corruptions.get(name)(batch, s, seed=seed)[0] for s in corruptions.SEVERITIES]
        for c, cell in enumerate(cells):
            axis = axes[r][c]
            axis.imshow(cell[..., 0] if cell.shape[-1] == 1 else cell, cmap="gray", vmin=0, vmax=1)
            axis.set_xticks([])
            axis.set_yticks([])
            if r == 0:
                axis.set_title("clean" if c == 0 else f"severity {c}", fontsize=7)
        axes[r][0].set_ylabel(name, fontsize=7)
    figure.tight_layout()
    figure.savefig(png_path, dpi=100)
    plt.close(figure)
    return png_path
