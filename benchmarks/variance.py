"""Per-layer variance of the GLR estimate: layer-wise injection against the default.

    python benchmarks/variance.py              # about 5 minutes on 2 cores
    python benchmarks/variance.py --replicates 20

For the paper's MLP (196-20-10, step units, sigma 1) and the small CNN
(`architectures.small_cnn`, step units), at initialisation and after
`--epochs` (2) epochs of default GLR training (K = 100, Adam 0.01, batch 32,
on the mnist5k training split), on one batch of 32
mnist5k digits with K = 100 copies: `replicates` independent estimates per
option; for each layer the total variance of its estimate (the trace of its
covariance, summed over its weights) and the seconds per estimate. Printed
as ratios to the default (injection "all", leave-one-out baseline):
    variance ratio       at equal copies;
    variance x time      at equal wall time (an estimator twice as slow
                         averages half as many estimates in the same time).
Below 1 is better. Shares (1:2:4) split the copies as `glr-train
--copy-split` does, on the networks with that many noisy layers. The row
"pooled pre-activations" measures the CNN with its conv layers' noise added
after the max-pool (`glr-train --pool pre-activation`), with the same
weights (trained on the default CNN for the second measurement). The
options estimate different objectives (see `keras_glr.estimators.GLR`):
this measures their noise, not their target.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_glr import architectures  # noqa: E402
from keras_glr import copies  # noqa: E402
from keras_glr import data  # noqa: E402
from keras_glr.layers import noisy_layers  # noqa: E402
from keras_glr.noise import Gaussian  # noqa: E402

CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
OPTIONS = {
    "all (default)": dict(injection="all"),
    "all, antithetic": dict(injection="all", antithetic=True),
    "layerwise": dict(injection="layerwise"),
    "layerwise, antithetic": dict(injection="layerwise", antithetic=True),
    "layerwise, proportional": dict(injection="layerwise", copies_per_layer="proportional"),
    "layerwise, proportional, antithetic": dict(injection="layerwise", copies_per_layer="proportional", antithetic=True),
    "layerwise, antithetic, shares 1:2:4 (CNN)": dict(injection="layerwise", antithetic=True, shares=(1, 2, 4)),
    "layerwise, antithetic, shares 1:2:4, pooled pre-activations (CNN)": dict(
        injection="layerwise", antithetic=True, shares=(1, 2, 4), pool="pre-activation"),
    "layerwise, antithetic, no baseline": dict(injection="layerwise", antithetic=True, baseline="none"),
    "latin, no baseline": dict(injection="all", sampling="latin", baseline="none"),
    "layerwise, latin, no baseline": dict(injection="layerwise", sampling="latin", baseline="none"),
    "layerwise, latin, antithetic, no baseline": dict(injection="layerwise", sampling="latin", baseline="none", antithetic=True),
    "sobol, no baseline": dict(injection="all", sampling="sobol", baseline="none"),
    "layerwise, sobol, no baseline": dict(injection="layerwise", sampling="sobol", baseline="none"),
    "layerwise, sobol, antithetic, no baseline": dict(injection="layerwise", sampling="sobol", baseline="none", antithetic=True),
}


def _networks():
    mlp = data.test_arrays("mnist5k", image_size=14, flatten=True, examples=32)
    images = data.test_arrays("mnist5k", image_size=14, flatten=False, examples=32)
    return {
        "MLP 196-20-10": (lambda: architectures.mlp((196,), 10, (20,), "step", Gaussian(1.0)), mlp, True),
        "CNN": (lambda pool="output": architectures.small_cnn((14, 14, 1), 10, activation="step", noise=Gaussian(1.0), pool=pool),
                images, False),
    }


def trained_weights(build, flatten, epochs, copies):
    """The weights after `epochs` epochs of default GLR training on the mnist5k training split."""
    keras.utils.set_random_seed(0)
    model = build()
    model.compile(keras.optimizers.Adam(0.01), CE, copies=copies, metrics=["accuracy"])
    splits = data.load("mnist5k", batch_size=32, image_size=14, flatten=flatten)
    model.fit(splits.train, epochs=epochs, verbose=0)
    print(f"(trained {epochs} epochs: validation accuracy {model.evaluate(splits.validation, verbose=0)[1]:.3f})")
    return model.get_weights()


def layer_variances(model, x, y, replicates, copies):
    """({layer name: total variance}, seconds per estimate) over `replicates` estimates."""
    model.estimate_gradients(x, y, copies=copies)  # trace
    started = time.perf_counter()
    samples = [[np.asarray(g, np.float64) for g in model.estimate_gradients(x, y, copies=copies)] for _ in range(replicates)]
    seconds = (time.perf_counter() - started) / replicates
    per_layer = {}
    for index, variable in enumerate(model.trainable_variables):
        layer = variable.path.split("/")[-2]
        stacked = np.stack([s[index] for s in samples])
        per_layer[layer] = per_layer.get(layer, 0.0) + float(stacked.var(axis=0, ddof=1).sum())
    return per_layer, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicates", type=int, default=40)
    parser.add_argument("--copies", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=2, help="epochs of default GLR training before the second measurement (0: none)")
    args = parser.parse_args()
    for name, (build, (x, y), flatten) in _networks().items():
        stages = [("at initialisation", None)]
        if args.epochs:
            stages.append((f"after {args.epochs} epochs", trained_weights(build, flatten, args.epochs, args.copies)))
        for stage, weights in stages:
            report(name, stage, build, weights, x, y, args)


def report(name, stage, build, weights, x, y, args):
    """Measures every option on the network with `weights` (None: initial) and prints the table."""
    results = {}
    for option, settings in OPTIONS.items():
        settings = dict(settings)
        pool = settings.pop("pool", None)
        if pool is not None and name != "CNN":
            continue
        keras.utils.set_random_seed(0)
        model = build() if pool is None else build(pool=pool)  # the pooled CNN has the same weights' shapes
        shares = settings.pop("shares", None)
        if shares is not None:  # copies shared in proportion to `shares`, one per noisy layer (`run_config.copy_split`)
            if len(shares) != len(noisy_layers(model)):
                continue
            settings["copies_per_layer"] = copies.proportional_sizes(args.copies, shares, 2 if settings.get("antithetic") else 1)
        if weights is not None:
            model.set_weights(weights)
        model.compile("adam", CE, copies=args.copies, **settings)
        results[option] = layer_variances(model, x, y, args.replicates, args.copies)
    base, base_seconds = results["all (default)"]
    print(f"\n{name}, K = {args.copies}, batch 32, {args.replicates} estimates per option, {stage}")
    print("| option | ms per estimate | " + " | ".join(f"{layer}: variance, x time" for layer in base) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in base) + " |")
    for option, (variances, seconds) in results.items():
        cells = [f"{variances[layer] / base[layer]:.3f}, {variances[layer] * seconds / (base[layer] * base_seconds):.3f}" for layer in base]
        print(f"| {option} | {1000 * seconds:.1f} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
