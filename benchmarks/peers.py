"""GLR beside the other backprop-free estimators, on one network, one data pipeline, equal forward passes.

    python benchmarks/peers.py --quick          # one seed, 3 epochs, a small grid (a few minutes on 2 cores)
    python benchmarks/peers.py                  # seeds 0, 1, 2, 12 epochs

Networks: the paper's 196-20-10 MLP with sigmoid units and with step units,
on mnist5k at 14x14 (the split of `glr-train`). Estimators, each under its
`compile` name, all with K = 100 copies per step (GLR: 100 noisy copies of
each example; weight-perturbation: 50 antithetic pairs of perturbed
networks; spsa: 50 Gaussian directions, two passes each, the weights moved
in place; forward-gradient: 100 tangents), so every row spends the same
forward passes per example; bp (backprop) is the reference. Each
estimator's learning rate, and the weight perturbations' sigma, are screened on
seed 0 by validation accuracy (the grid is printed); the best setting then
trains every seed, and the table gives the test accuracy per seed and its
mean. The forward gradient has no derivative to follow through step units:
its step row says "refused".
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

from keras_glr import runs  # noqa: E402

ESTIMATORS = ("glr", "weight-perturbation", "spsa", "forward-gradient", "bp")
PERTURBED = ("weight-perturbation", "spsa")  # the estimators that perturb the weights, with a sigma
NETWORKS = {"sigmoid": dict(activation="sigmoid", sigma=1.0), "step": dict(activation="step", sigma=1.0)}
#: The settings screened on seed 0: (learning rates, weight perturbation's sigmas).
GRID = {"full": ((0.003, 0.01, 0.03), (0.01, 0.03, 0.1)), "quick": ((0.01, 0.03), (0.03, 0.1))}


def _config(network, estimator, seed, epochs, learning_rate, perturbation_scale=None):
    options = dict(
        NETWORKS[network], estimator=estimator, seed=seed, epochs=epochs, learning_rate=learning_rate, copies=100
    )
    if estimator == "bp":
        options["copies"] = 1
    if estimator in PERTURBED:
        options["perturbation_scale"] = perturbation_scale
    return runs.RunConfig.for_arch(**options)


def _train(config):
    """(validation accuracy, test accuracy, seconds) after training `config`, without a run directory."""
    config.validate()
    keras.utils.set_random_seed(config.seed)
    splits = runs.load_data(config)
    model = runs.build_model(config, splits.info, splits.steps_per_epoch)
    start = time.perf_counter()
    model.fit(splits.train, epochs=config.epochs, verbose=0, shuffle=False)  # the stream is shuffled from the seed
    seconds = time.perf_counter() - start
    return model.evaluate(splits.validation, verbose=0)[1], model.evaluate(splits.test, verbose=0)[1], seconds


def _settings(estimator, grid):
    rates, sigmas = grid
    if estimator in PERTURBED:
        return [(rate, sigma) for rate in rates for sigma in sigmas]
    return [(rate, None) for rate in rates]


def row(network, estimator, seeds, epochs, grid):
    """The best setting on seed 0 (by validation accuracy), then the test accuracy of every seed with it."""
    try:
        screened = [
            (_train(_config(network, estimator, 0, epochs, *setting))[0], setting)
            for setting in _settings(estimator, grid)
        ]
    except ValueError as error:
        return {"network": network, "estimator": estimator, "refused": str(error).split(".")[0]}
    best = max(screened)[1]
    results = [_train(_config(network, estimator, seed, epochs, *best)) for seed in seeds]
    return {
        "network": network,
        "estimator": estimator,
        "setting": best,
        "screened": screened,
        "test": [test for _, test, _ in results],
        "seconds": statistics.mean(s for _, _, s in results),
    }


def _setting_text(setting):
    rate, sigma = setting
    return f"lr {rate}" + (f", sigma {sigma}" if sigma is not None else "")


def table(rows):
    """The rows as a Markdown table: network, estimator, setting, test accuracy per seed and mean, seconds."""
    lines = [
        "| network | estimator | setting (screened on seed 0) | test accuracy per seed | mean | training s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        if "refused" in r:
            lines.append(f"| {r['network']} | {r['estimator']} | refused: {r['refused']} | | | |")
            continue
        per_seed = " / ".join(f"{a:.3f}" for a in r["test"])
        lines.append(
            f"| {r['network']} | {r['estimator']} | {_setting_text(r['setting'])} | {per_seed} | "
            f"{statistics.mean(r['test']):.3f} | {r['seconds']:.1f} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="peers.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one seed, 3 epochs, the small grid")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per training (default 12, or 3 with --quick)")
    parser.add_argument("--estimators", default=",".join(ESTIMATORS), help="comma-separated compile names")
    parser.add_argument("--networks", default=",".join(NETWORKS), help="sigmoid, step")
    args = parser.parse_args(argv)
    seeds = (0,) if args.quick else (0, 1, 2)
    epochs = args.epochs or (3 if args.quick else 12)
    grid = GRID["quick" if args.quick else "full"]
    print(
        f"peers: epochs {epochs}, seeds {list(seeds)}, learning rates {list(grid[0])}, weight-perturbation sigmas "
        f"{list(grid[1])}, K = 100 forward passes per example and step",
        flush=True,
    )
    rows = []
    for network in args.networks.split(","):
        for estimator in args.estimators.split(","):
            rows.append(row(network, estimator, seeds, epochs, grid))
            r = rows[-1]
            print(
                f"  {network:8s} {estimator:20s} "
                + (
                    "refused"
                    if "refused" in r
                    else f"{_setting_text(r['setting'])}: test {' / '.join(f'{a:.3f}' for a in r['test'])}"
                ),
                flush=True,
            )
    print()
    print(table(rows))
    return rows


if __name__ == "__main__":
    main()
