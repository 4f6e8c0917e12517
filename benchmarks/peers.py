"""GLR beside the other backprop-free estimators: one network, one data pipeline, equal forward passes.

    python benchmarks/peers.py --quick                 # the two MLPs, one seed, 3 epochs, a small grid (minutes)
    python benchmarks/peers.py                         # all three parts below, 3 seeds (hours on 2 cores)
    python benchmarks/peers.py --parts training --networks cnn,snn

Every estimator runs under its `compile` name on mnist5k at 14x14 (the split
of `glr-train`), with K = 100 forward passes per example and step: GLR, 100
noisy copies of each example; weight-perturbation, 50 antithetic pairs of
perturbed networks; spsa, 50 Gaussian directions, two passes each, the
weights moved in place; forward-gradient, 100 tangents (each a forward pass
with its JVP). bp (or bp-ste, where the units are steps or spikes) is the
backprop reference, one pass.

Parts (`--parts`):

- training: the paper's 196-20-10 MLP with sigmoid and with step units, the
  small CNN and the spiking network (each with `glr-train --arch`'s
  defaults, K = 100; the CNN and the SNN train 6 epochs and screen the quick
  grid). Each estimator's learning rate, and the weight perturbations'
  sigma, are screened on seed 0 by validation accuracy (the grid is printed; SPSA's Gaussian directions compute weight
  perturbation's estimate, so it takes weight perturbation's setting); the
  best setting trains every seed. Columns: test accuracy at equal forward
  passes (the end of training), at equal wall time (the shortest
  backprop-free training of that network), and the seconds to a common
  target (the lowest backprop-free final accuracy).
- quality: on the sigmoid MLP at its initial weights and one batch, the
  cosine of each estimate to the exact gradient of its own objective
  against the forward passes K spent (GLR: the noisy network's loss, by
  reparameterised backprop over 20,000 noise draws; weight perturbation and
  SPSA: the loss smoothed by weight noise, by backprop at 2,000 antithetic
  draws; forward gradient: the noiseless gradient). Figure:
  peers_quality.png.
- width: node (GLR) against weight perturbation as the hidden layer widens
  from 20 to 1000 units: the cosine at K = 100, and the test accuracy after
  a fixed budget (3 epochs at K = 100). Figure: peers_width.png.
"""

import argparse
import math
import os
import pathlib
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_glr import runs  # noqa: E402

ESTIMATORS = ("glr", "weight-perturbation", "spsa", "forward-gradient", "bp")
PERTURBED = ("weight-perturbation", "spsa")  # the estimators that perturb the weights, with a sigma
BACKPROP_FREE = ("glr", "weight-perturbation", "spsa", "forward-gradient")
COPIES = 100
NETWORKS = {
    "sigmoid": dict(activation="sigmoid", sigma=1.0),
    "step": dict(activation="step", sigma=1.0),
    "cnn": dict(arch="cnn"),
    "snn": dict(arch="snn"),
}
SPIKING_OR_STEP = ("step", "snn")  # backprop's reference there is bp-ste (the straight-through surrogate)
#: The settings screened on seed 0: (learning rates, weight perturbation's sigmas).
GRID = {"full": ((0.003, 0.01, 0.03), (0.03, 0.1, 0.3)), "quick": ((0.01, 0.03), (0.03, 0.1, 0.3))}
#: The networks whose full run screens the quick grid and trains 6 epochs (a weight-perturbation epoch of the CNN
#: runs 100 CNNs per batch: 5-11 s on 2 cores, against 1 s for the MLP).
COSTLY = {"cnn", "snn"}
QUALITY_COPIES = (10, 30, 100, 300, 1000)
QUALITY_SIGMA = 0.03  # the weight perturbations' sigma of the quality measurements (`perturbation_scale`'s default)
WIDTHS = (20, 100, 300, 1000)
#: The width part's training settings (learning rate, sigma) where the training part did not run: the sigmoid
#: network's screened settings in the full run.
WIDTH_SETTINGS = {"glr": (0.01, None), "weight-perturbation": (0.03, 0.3)}
FIGURES = pathlib.Path(__file__).resolve().parents[1] / "docs" / "figures"


def _config(network, estimator, seed, epochs, learning_rate, perturbation_scale=None, **extra):
    options = dict(
        NETWORKS[network], estimator=estimator, seed=seed, epochs=epochs, learning_rate=learning_rate, copies=COPIES
    )
    if estimator in ("bp", "bp-ste"):
        options["copies"] = 1
    if estimator in PERTURBED:
        options["perturbation_scale"] = perturbation_scale
    return runs.RunConfig.for_arch(**options, **extra)


class Curve(keras.callbacks.Callback):
    """Per epoch: (training seconds so far, test accuracy); the evaluation is not timed."""

    def __init__(self, test):
        super().__init__()
        self.test, self.seconds, self.points = test, 0.0, []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds += time.perf_counter() - self.start
        self.points.append((self.seconds, self.model.evaluate(self.test, verbose=0)[1]))


def _train(config, curve=False):
    """(validation accuracy, test accuracy, [(seconds, test accuracy)] per epoch or None), without a run directory."""
    config.validate()
    keras.utils.set_random_seed(config.seed)
    splits = runs.load_data(config)
    model = runs.build_model(config, splits.info, splits.steps_per_epoch)
    callbacks = [Curve(splits.test)] if curve else []
    model.fit(splits.train, epochs=config.epochs, verbose=0, shuffle=False, callbacks=callbacks)
    points = callbacks[0].points if curve else None
    return model.evaluate(splits.validation, verbose=0)[1], model.evaluate(splits.test, verbose=0)[1], points


def _settings(estimator, grid):
    rates, sigmas = grid
    if estimator in PERTURBED:
        return [(rate, sigma) for rate in rates for sigma in sigmas]
    return [(rate, None) for rate in rates]


def row(network, estimator, seeds, epochs, grid, setting=None):
    """The best setting on seed 0 (by validation accuracy), then every seed with it, with its accuracy curve.

    `setting` skips the screen (SPSA takes weight perturbation's).
    """
    result = {"network": network, "estimator": estimator}
    try:
        if setting is None:
            screened = [
                (_train(_config(network, estimator, 0, epochs, *candidate))[0], candidate)
                for candidate in _settings(estimator, grid)
            ]
            result["screened"], setting = screened, max(screened)[1]
        curves = [_train(_config(network, estimator, seed, epochs, *setting), curve=True)[2] for seed in seeds]
    except ValueError as error:
        return {**result, "refused": str(error).split(". ")[0]}
    return {
        **result,
        "setting": setting,
        "curves": curves,
        "test": [points[-1][1] for points in curves],
        "seconds": statistics.mean(points[-1][0] for points in curves),
    }


def reference_estimator(network):
    return "bp-ste" if network in SPIKING_OR_STEP else "bp"


def network_rows(network, seeds, epochs, grid, estimators=ESTIMATORS):
    """Every estimator's row on `network` (SPSA with weight perturbation's screened setting)."""
    rows, screened = [], {}
    for estimator in estimators:
        name = reference_estimator(network) if estimator == "bp" else estimator
        given = screened.get("weight-perturbation") if estimator == "spsa" else None
        rows.append(row(network, name, seeds, epochs, grid, setting=given))
        screened[name] = rows[-1].get("setting")
        print("  " + _progress(rows[-1]), flush=True)
    return rows


def _progress(r):
    if "refused" in r:
        return f"{r['network']:8s} {r['estimator']:20s} refused"
    tests = " / ".join(f"{a:.3f}" for a in r["test"])
    return f"{r['network']:8s} {r['estimator']:20s} {_setting_text(r['setting'])}: test {tests} ({r['seconds']:.0f} s)"


def _setting_text(setting):
    rate, sigma = setting
    return f"lr {rate}" + (f", sigma {sigma}" if sigma is not None else "")


def accuracy_by(points, seconds):
    """The test accuracy at the last epoch that ended within `seconds`, or None."""
    within = [accuracy for at, accuracy in points if at <= seconds]
    return within[-1] if within else None


def time_to(points, target):
    """Training seconds until the test accuracy first reached `target`, or None."""
    return next((at for at, accuracy in points if accuracy >= target), None)


def budgets(rows):
    """(equal wall time, common target) of one network's rows: over its backprop-free rows that trained."""
    free = [r for r in rows if "refused" not in r and r["estimator"] in BACKPROP_FREE]
    if not free:
        return None, None
    seconds = min(r["seconds"] for r in free)
    target = math.floor(100 * min(statistics.mean(r["test"]) for r in free)) / 100
    return seconds, target


def table(rows):
    """The rows as a Markdown table, each network's equal-time budget and target computed from its own rows."""
    lines = [
        "| network | estimator | setting (screened on seed 0) | test accuracy per seed | mean (equal passes) | "
        "mean at equal time | s to target | training s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for network in dict.fromkeys(r["network"] for r in rows):
        mine = [r for r in rows if r["network"] == network]
        seconds, target = budgets(mine)
        for r in mine:
            if "refused" in r:
                lines.append(f"| {network} | {r['estimator']} | refused: {r['refused']} | | | | | |")
                continue
            per_seed = " / ".join(f"{a:.3f}" for a in r["test"])
            at_time = [accuracy_by(points, seconds) for points in r.get("curves", [])] if seconds else []
            timed = "—" if not at_time or None in at_time else f"{statistics.mean(at_time):.3f}"
            reached = [time_to(points, target) for points in r.get("curves", [])] if target else []
            hits = [t for t in reached if t is not None]
            to_target = "—" if not hits else f"{statistics.mean(hits):.1f}"
            if hits and len(hits) < len(reached):
                to_target += f" ({len(hits)} of {len(reached)} seeds)"
            lines.append(
                f"| {network} | {r['estimator']} | {_setting_text(r['setting'])} | {per_seed} | "
                f"{statistics.mean(r['test']):.3f} | {timed} | {to_target} | {r['seconds']:.1f} |"
            )
        if seconds:
            lines.append(f"| {network} | | equal time {seconds:.1f} s; target {target:.2f} | | | | | |")
    return "\n".join(lines)


# Estimate quality: the cosine of an estimate to the exact gradient of its own objective.


def _flat(gradients):
    return np.concatenate([np.ravel(np.asarray(g, dtype=np.float64)) for g in gradients])


def cosine(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _quality_model(hidden, seed=0):
    """The sigmoid MLP (noise sigma 1.0) at its initial weights, and one training batch of 32."""
    config = runs.RunConfig.for_arch(**NETWORKS["sigmoid"], hidden=(hidden,), seed=seed, copies=COPIES)
    keras.utils.set_random_seed(seed)
    splits = runs.load_data(config)
    model = runs.build_model(config, splits.info, splits.steps_per_epoch)
    x, y = next(iter(splits.train))
    return model, x, y


def exact_gradients(model, x, y, sigma, rng, draws=2000, noisy_copies=20_000):
    """{estimator: the exact gradient of its objective}, flat, at the model's weights.

    glr: d E_r[L] / d theta under the neurons' noise, reparameterised
    backprop over `noisy_copies` noise draws (in estimates of 1000 copies);
    weight-perturbation and spsa: d E_e[L(theta + sigma e)] / d theta, the
    mean of backprop at `draws` weights theta +- sigma e (antithetic pairs);
    forward-gradient: the noiseless gradient.
    """
    per_estimate = min(noisy_copies, 1000)
    noisy = np.mean(
        [
            _flat(model.estimate_gradients(x, y, copies=per_estimate, estimator="bp-noise"))
            for _ in range(noisy_copies // per_estimate)
        ],
        axis=0,
    )
    theta = [v.numpy() for v in model.trainable_variables]
    smoothed = 0.0
    for _ in range(draws // 2):
        e = [rng.standard_normal(t.shape).astype("float32") for t in theta]
        for sign in (1.0, -1.0):
            for v, t, d in zip(model.trainable_variables, theta, e):
                v.assign(t + sign * sigma * d)
            smoothed = smoothed + _flat(model.estimate_gradients(x, y, copies=1, estimator="bp")) / draws
    for v, t in zip(model.trainable_variables, theta):
        v.assign(t)
    exact = _flat(model.estimate_gradients(x, y, copies=1, estimator="bp"))
    return {"glr": noisy, "weight-perturbation": smoothed, "spsa": smoothed, "forward-gradient": exact}


def quality(model, x, y, references, estimators, copies, replicates):
    """{estimator: [(K, mean cosine, sd) for K in copies]} over `replicates` estimates each."""
    results = {}
    for estimator in estimators:
        results[estimator] = []
        for k in copies:
            values = [
                cosine(_flat(model.estimate_gradients(x, y, copies=k, estimator=estimator)), references[estimator])
                for _ in range(replicates)
            ]
            results[estimator].append((k, statistics.mean(values), statistics.stdev(values)))
    return results


def quality_part(replicates=10, figures=FIGURES):
    model, x, y = _quality_model(20)
    references = exact_gradients(model, x, y, QUALITY_SIGMA, np.random.default_rng(0))
    results = quality(model, x, y, references, BACKPROP_FREE, QUALITY_COPIES, replicates)
    print("\nEstimate quality, sigmoid 196-20-10 at its initial weights, one batch of 32: cosine to the exact gradient")
    print(f"of each estimator's objective (mean +- sd over {replicates} estimates; weight sigma 0.03, noise sigma 1.0)")
    print("| forward passes K | " + " | ".join(BACKPROP_FREE) + " |")
    print("| --- |" + " --- |" * len(BACKPROP_FREE))
    for i, k in enumerate(QUALITY_COPIES):
        cells = [f"{results[e][i][1]:.3f} +- {results[e][i][2]:.3f}" for e in BACKPROP_FREE]
        print(f"| {k} | " + " | ".join(cells) + " |")
    _plot_quality(results, figures / "peers_quality.png")
    return results


def width_part(settings, replicates=5, epochs=3, figures=FIGURES):
    """Cosine at K = 100 and test accuracy after `epochs`, for GLR and weight perturbation, per hidden width."""
    results = {"glr": [], "weight-perturbation": []}
    for width in WIDTHS:
        model, x, y = _quality_model(width)
        references = exact_gradients(model, x, y, QUALITY_SIGMA, np.random.default_rng(0))
        cosines = quality(model, x, y, references, tuple(results), (COPIES,), replicates)
        for estimator in results:
            rate, sigma = settings[estimator]
            config = _config("sigmoid", estimator, 0, epochs, rate, sigma, hidden=(width,))
            accuracy = _train(config)[1]
            results[estimator].append((width, cosines[estimator][0][1], accuracy))
        print(f"  width {width}: " + ", ".join(f"{e} {results[e][-1][1:]}" for e in results), flush=True)
    print(f"\nNode (GLR) against weight perturbation as the hidden layer widens (K = 100, {epochs} epochs, seed 0;")
    print(f"cosines at weight sigma {QUALITY_SIGMA}, training at {settings})")
    print(
        "| hidden units | GLR cosine | weight-perturbation cosine | GLR test accuracy | weight-perturbation test acc. |"
    )
    print("| --- | --- | --- | --- | --- |")
    for i, width in enumerate(WIDTHS):
        glr, es = results["glr"][i], results["weight-perturbation"][i]
        print(f"| {width} | {glr[1]:.3f} | {es[1]:.3f} | {glr[2]:.3f} | {es[2]:.3f} |")
    _plot_width(results, figures / "peers_width.png", epochs)
    return results


def _plot_quality(results, path):
    from keras_glr._src.plots import pyplot

    plt = pyplot()
    figure, axes = plt.subplots(figsize=(6, 4))
    for estimator, points in results.items():
        ks, means, sds = zip(*points)
        axes.errorbar(ks, means, yerr=sds, marker="o", capsize=3, label=estimator)
    axes.set_xscale("log")
    axes.set_xlabel("forward passes per example (K)")
    axes.set_ylabel("cosine to the exact gradient of its objective")
    axes.set_title("Estimate quality per forward pass, sigmoid 196-20-10")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _plot_width(results, path, epochs):
    from keras_glr._src.plots import pyplot

    plt = pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    names = {"glr": "GLR (node perturbation)", "weight-perturbation": "weight perturbation"}
    for estimator, points in results.items():
        widths, cosines, accuracies = zip(*points)
        left.plot(widths, cosines, marker="o", label=names[estimator])
        right.plot(widths, accuracies, marker="o", label=names[estimator])
    for axis, label in ((left, "cosine at K = 100"), (right, f"test accuracy after {epochs} epochs, K = 100")):
        axis.set_xscale("log")
        axis.set_xlabel("hidden units")
        axis.set_ylabel(label)
        axis.legend()
    figure.suptitle("Node against weight perturbation as the network widens (sigmoid 196-h-10)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="peers.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the two MLPs, one seed, 3 epochs, the small grid")
    parser.add_argument("--parts", default=None, help="training, quality, width (default: all; --quick: training)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per training (default 12, or 3 with --quick)")
    parser.add_argument("--estimators", default=",".join(ESTIMATORS), help="comma-separated compile names")
    parser.add_argument("--networks", default=None, help="sigmoid, step, cnn, snn (default: all; --quick: the MLPs)")
    parser.add_argument("--figures", default=str(FIGURES), help="folder for peers_quality.png and peers_width.png")
    args = parser.parse_args(argv)
    keras.config.disable_interactive_logging()
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # estimate_gradients traces once per (K, estimator): expected here
    parts = (args.parts or ("training" if args.quick else "training,quality,width")).split(",")
    networks = (args.networks or ("sigmoid,step" if args.quick else ",".join(NETWORKS))).split(",")
    seeds = (0,) if args.quick else (0, 1, 2)
    epochs = args.epochs or (3 if args.quick else 12)
    grid = GRID["quick" if args.quick else "full"]
    figures = pathlib.Path(args.figures)
    rows = []
    if "training" in parts:
        print(
            f"peers: epochs {epochs}, seeds {list(seeds)}, learning rates {list(grid[0])}, weight-perturbation sigmas "
            f"{list(grid[1])}, K = {COPIES} forward passes per example and step",
            flush=True,
        )
        for network in networks:
            costly = network in COSTLY and not args.quick and args.epochs is None
            budget = (GRID["quick"], 6) if costly else (grid, epochs)
            if costly:
                print(f"  {network}: the quick grid, 6 epochs", flush=True)
            rows += network_rows(network, seeds, budget[1], budget[0], args.estimators.split(","))
        print()
        print(table(rows))
    if "quality" in parts:
        quality_part(figures=figures)
    if "width" in parts:
        trained = {r["estimator"]: r["setting"] for r in rows if r["network"] == "sigmoid" and "setting" in r}
        settings = {name: trained.get(name, setting) for name, setting in WIDTH_SETTINGS.items()}
        print(f"\nwidth: settings {settings} (the sigmoid network's screened ones where the training part ran)")
        width_part(settings, figures=figures)
    return rows


if __name__ == "__main__":
    main()
