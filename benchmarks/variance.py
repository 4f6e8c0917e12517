"""Per-layer variance of the GLR estimate: layer-wise injection against the default.

    python benchmarks/variance.py              # about 5 minutes on 2 cores
    python benchmarks/variance.py --replicates 20
    python benchmarks/variance.py --time       # the rnn's estimate step by step (about 3 minutes)

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
options estimate different objectives (see `keras_glr._src.estimators.GLR`):
this measures their noise, not their target.

With --time: the rnn of `glr-train --arch rnn` (14 steps of 14 pixels, 64
tanh units, sigma 0.1, K = 100, antithetic), at initialisation and after
`--epochs` epochs of its default GLR training, on one batch of 32 digits:
the recurrent cell's estimate split into its steps' terms (each step's VJP
at L * s(r_t)), and per step the squared norm of the mean term (its
signal, debiased for the replicates' noise) and the total variance of the
term, each as a share of the sum over steps; beside them the same split of backprop through time on the same
noise draws (reparameterised, `estimator="bp-noise"`'s objective): the
signal GLR should find at each step.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_glr import architectures  # noqa: E402
from keras_glr import data  # noqa: E402
from keras_glr._src import copies  # noqa: E402
from keras_glr._src import estimators  # noqa: E402
from keras_glr._src import streams  # noqa: E402
from keras_glr.layers import noisy_layers  # noqa: E402
from keras_glr.noise import Gaussian  # noqa: E402

CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
OPTIONS = {
    "all (default)": dict(injection="all"),
    "all, antithetic": dict(injection="all", antithetic=True),
    "layerwise": dict(injection="layerwise"),
    "layerwise, antithetic": dict(injection="layerwise", antithetic=True),
    "layerwise, proportional": dict(injection="layerwise", copies_per_layer="proportional"),
    "layerwise, proportional, antithetic": dict(
        injection="layerwise", copies_per_layer="proportional", antithetic=True
    ),
    "layerwise, antithetic, shares 1:2:4 (CNN)": dict(injection="layerwise", antithetic=True, shares=(1, 2, 4)),
    "layerwise, antithetic, shares 1:2:4, pooled pre-activations (CNN)": dict(
        injection="layerwise", antithetic=True, shares=(1, 2, 4), pool="pre-activation"
    ),
    "layerwise, antithetic, no baseline": dict(injection="layerwise", antithetic=True, baseline="none"),
    "latin, no baseline": dict(injection="all", sampling="latin", baseline="none"),
    "layerwise, latin, no baseline": dict(injection="layerwise", sampling="latin", baseline="none"),
    "layerwise, latin, antithetic, no baseline": dict(
        injection="layerwise", sampling="latin", baseline="none", antithetic=True
    ),
    "sobol, no baseline": dict(injection="all", sampling="sobol", baseline="none"),
    "layerwise, sobol, no baseline": dict(injection="layerwise", sampling="sobol", baseline="none"),
    "layerwise, sobol, antithetic, no baseline": dict(
        injection="layerwise", sampling="sobol", baseline="none", antithetic=True
    ),
}


def _networks():
    mlp = data.test_arrays("mnist5k", image_size=14, flatten=True, examples=32)
    images = data.test_arrays("mnist5k", image_size=14, flatten=False, examples=32)
    return {
        "MLP 196-20-10": (lambda: architectures.mlp((196,), 10, (20,), "step", Gaussian(1.0)), mlp, True),
        "CNN": (
            lambda pool="output": architectures.small_cnn(
                (14, 14, 1), 10, activation="step", noise=Gaussian(1.0), pool=pool
            ),
            images,
            False,
        ),
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
    samples = [
        [np.asarray(g, np.float64) for g in model.estimate_gradients(x, y, copies=copies)] for _ in range(replicates)
    ]
    seconds = (time.perf_counter() - started) / replicates
    per_layer = {}
    for index, variable in enumerate(model.trainable_variables):
        layer = variable.path.split("/")[-2]
        stacked = np.stack([s[index] for s in samples])
        per_layer[layer] = per_layer.get(layer, 0.0) + float(stacked.var(axis=0, ddof=1).sum())
    return per_layer, seconds


def step_terms(model, x, y, k, key):
    """Per step of the rnn's first recurrence, its terms of the cell's estimate, flattened: (GLR, BPTT), each (T, P).

    GLR: step t's VJP at cotangent (L - baseline) * s(r_t) / (B K). BPTT:
    backprop through the same noisy pass, the gradient through step t's
    pre-activation alone (its cotangent dL/dv_t, the same VJP).
    """
    import tensorflow as tf

    from keras_glr import losses as glr_losses

    loss = glr_losses.per_example(model.loss)
    cell = model.get_layer("recurrence_1").cell
    variables = [cell.kernel, cell.recurrent_kernel, cell.bias]
    with tf.GradientTape(persistent=True) as tape:
        y_pred, record = copies.forward(model, x, k, local=True, antithetic=True, key=key)
        losses, _, _ = copies.copy_losses(loss, y, y_pred, None, k)
    centred = estimators.centre_losses(tf.stop_gradient(losses), k, "loo", True) / tf.cast(tf.size(losses), tf.float32)
    steps = [entry for entry in record.entries if entry.layer is cell]
    glr = [estimators.local_gradients(tape, [entry], centred, variables) for entry in steps]
    with tf.GradientTape(persistent=True) as tape:
        y_pred, record = copies.forward(model, x, k, local=False, antithetic=True, key=key)
        mean_loss = tf.reduce_mean(copies.copy_losses(loss, y, y_pred, None, k)[0])
    steps = [entry for entry in record.entries if entry.layer is cell]
    cotangents = tape.gradient(mean_loss, [entry.pre_activation for entry in steps])
    with tf.GradientTape(persistent=True) as tape:
        y_pred, record = copies.forward(model, x, k, local=True, antithetic=True, key=key)
    steps = [entry for entry in record.entries if entry.layer is cell]
    bptt = [tape.gradient(entry.pre_activation, variables, output_gradients=c) for entry, c in zip(steps, cotangents)]
    flat = lambda terms: np.stack([np.concatenate([np.ravel(g) for g in term]) for term in terms])  # noqa: E731
    return flat(glr), flat(bptt)


def report_time(args):
    """The rnn's per-step table (see the module docstring)."""
    from keras_glr import runs

    (x, y) = data.test_arrays("mnist5k", image_size=14, flatten=False, examples=32)
    config = runs.RunConfig.for_arch(arch="rnn")
    splits = data.load("mnist5k", batch_size=32, image_size=14, seed=0)
    keras.utils.set_random_seed(0)
    model = runs.build_model(config, splits.info, splits.steps_per_epoch)
    for stage in ("at initialisation", f"after {args.epochs} epochs"):
        if stage != "at initialisation":
            model.fit(splits.train, epochs=args.epochs, verbose=0)
            print(f"(trained {args.epochs} epochs: test accuracy {model.evaluate(splits.test, verbose=0)[1]:.3f})")
        draws = [step_terms(model, x, y, config.copies, streams.stream_key([7, i])) for i in range(args.replicates)]
        glr, bptt = (np.stack([d[k] for d in draws]) for k in (0, 1))  # (R, T, P)
        variance = glr.var(0, ddof=1).sum(-1)
        signal = np.square(glr.mean(0)).sum(-1) - variance / len(draws)  # unbiased for the squared norm of the mean
        reference = np.square(bptt.mean(0)).sum(-1) - bptt.var(0, ddof=1).sum(-1) / len(draws)
        print(
            f"\nrnn ({config.hidden[0]} tanh units, sigma {config.sigma}), K = {config.copies}, batch 32, "
            f"{args.replicates} "
            f"estimates, {stage}: the cell's estimate step by step"
        )
        print("| step | GLR signal share | GLR variance share | BPTT signal share | GLR signal / variance |")
        print("| --- | --- | --- | --- | --- |")
        for t in range(glr.shape[1]):
            print(
                f"| {t + 1} | {signal[t] / signal.sum():.3f} | {variance[t] / variance.sum():.3f} | "
                f"{reference[t] / reference.sum():.3f} | {signal[t] / variance[t]:.3f} |"
            )
        total = glr.sum(1)
        whole = (np.square(total.mean(0)).sum() - total.var(0, ddof=1).sum() / len(draws)) / total.var(0, ddof=1).sum()
        print(
            f"whole estimate: signal / variance {whole:.3f} (squared norm of the mean over the trace of the "
            "covariance)",
            flush=True,
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicates", type=int, default=40)
    parser.add_argument("--copies", type=int, default=100)
    parser.add_argument(
        "--epochs", type=int, default=2, help="epochs of default GLR training before the second measurement (0: none)"
    )
    parser.add_argument("--time", action="store_true", help="only the rnn's per-step table")
    args = parser.parse_args()
    if args.time:
        report_time(args)
        return
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
            settings["copies_per_layer"] = copies.proportional_sizes(
                args.copies, shares, 2 if settings.get("antithetic") else 1
            )
        if weights is not None:
            model.set_weights(weights)
        model.compile("adam", CE, copies=args.copies, **settings)
        results[option] = layer_variances(model, x, y, args.replicates, args.copies)
    base, base_seconds = results["all (default)"]
    print(f"\n{name}, K = {args.copies}, batch 32, {args.replicates} estimates per option, {stage}")
    print("| option | ms per estimate | " + " | ".join(f"{layer}: variance, x time" for layer in base) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in base) + " |")
    for option, (variances, seconds) in results.items():
        cells = [
            f"{variances[layer] / base[layer]:.3f}, {variances[layer] * seconds / (base[layer] * base_seconds):.3f}"
            for layer in base
        ]
        print(f"| {option} | {1000 * seconds:.1f} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
