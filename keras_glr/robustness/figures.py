"""The robustness figures: accuracy against epsilon, adversarial and corrupted images."""

import math

import numpy as np

from keras_glr._src.plots import pyplot
from keras_glr.robustness import corruptions


def _as_image(row):
    """A model input (flat or image) as a 2-D or RGB array for imshow."""
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
    plt = pyplot()
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
    plt = pyplot()
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
    plt = pyplot()
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


def plot_certified_accuracy(curves, png_path):
    """Certified accuracy against radius: one panel per norm, a line per curve.

    Args:
        curves: {label: (norm, radii, accuracies, spreads or None)}; a label
            ending in "_twin" is drawn dashed in the colour of its row.
    """
    plt = pyplot()
    norms = sorted({norm for norm, *_ in curves.values()})
    figure, axes = plt.subplots(1, len(norms), figsize=(5.5 * len(norms), 4.0), squeeze=False)
    bases = list(dict.fromkeys(label.removesuffix("_twin") for label in curves))
    colors = plt.get_cmap("tab10" if len(bases) <= 10 else "tab20")
    for axis, norm in zip(axes[0], norms):
        for label, (curve_norm, radii, accuracy, spread) in curves.items():
            if curve_norm != norm:
                continue
            base = label.removesuffix("_twin")  # a BP twin: its row's colour, dashed
            style = dict(color=colors(bases.index(base) % colors.N), linestyle="--" if base != label else "-")
            line = axis.plot(radii, accuracy, marker="o", label=label, **style)[0]
            if spread is not None:
                low, high = np.subtract(accuracy, spread), np.add(accuracy, spread)
                axis.fill_between(radii, low, high, color=line.get_color(), alpha=0.15)
        axis.set_title(f"certified accuracy, {norm} radius in input space")
        axis.set_xlabel(f"{norm} radius")
        axis.set_ylabel("certified accuracy")
        axis.set_ylim(0, 1)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(png_path, dpi=100)
    plt.close(figure)
    return png_path
