"""The package's weight perturbation against evosax's OpenES, on the same network, data and population.

    python benchmarks/openes_parity.py --export /tmp/mnist5k.npz             # in keras_glr's environment
    python benchmarks/openes_parity.py --data /tmp/mnist5k.npz --activation sigmoid   # where evosax is installed

evosax (JAX) is not a dependency of keras_glr, so the script runs in two
halves: `--export` writes `glr-train`'s mnist5k split at 14x14 (train,
validation, test) to an .npz; `--data` trains the paper's 196-20-10 network
(sigmoid or step units, softmax cross-entropy) with `evosax.algorithms.
Open_ES` (antithetic, centred-rank fitness shaping, Adam), population 100,
batch 32, 12 epochs, the fitness of each member its batch's mean loss. Its
learning rate and sigma are screened on seed 0 over the grid of
`benchmarks/peers.py` (learning rates 0.003, 0.01, 0.03; sigmas 0.03, 0.1,
0.3) by validation accuracy, and the best trains seeds 0, 1, 2. Compare the
test accuracies it prints with `benchmarks/peers.py`'s weight-perturbation
rows.
"""

import argparse

GRID = ((0.003, 0.01, 0.03), (0.03, 0.1, 0.3))
POPULATION, BATCH, EPOCHS, HIDDEN = 100, 32, 12, 20


def export(path):
    """Writes glr-train's mnist5k split (14x14, flattened, in [0, 1]) to `path`."""
    import numpy as np

    from keras_glr import runs

    splits = runs.load_data(runs.RunConfig())
    arrays = {}
    for name in ("train", "validation", "test"):
        xs, ys = zip(*getattr(splits, name).unbatch().as_numpy_iterator())
        arrays[f"x_{name}"], arrays[f"y_{name}"] = np.stack(xs), np.array(ys)
    np.savez_compressed(path, **arrays)
    print(f"wrote {path}: " + ", ".join(f"{k} {v.shape}" for k, v in arrays.items()))


def train(data, activation, learning_rate, sigma, seed):
    """(validation accuracy, test accuracy) of OpenES's mean after the epochs."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from evosax.algorithms import Open_ES

    rng = np.random.default_rng(seed)
    inputs, classes = data["x_train"].shape[1], int(data["y_train"].max()) + 1
    limit1, limit2 = np.sqrt(6 / (inputs + HIDDEN)), np.sqrt(6 / (HIDDEN + classes))  # Glorot uniform, as Keras
    mean = jnp.concatenate(
        [
            jnp.asarray(rng.uniform(-limit1, limit1, inputs * HIDDEN)),
            jnp.zeros(HIDDEN),
            jnp.asarray(rng.uniform(-limit2, limit2, HIDDEN * classes)),
            jnp.zeros(classes),
        ]
    ).astype(jnp.float32)
    sizes = (inputs * HIDDEN, HIDDEN, HIDDEN * classes, classes)
    unit = jax.nn.sigmoid if activation == "sigmoid" else (lambda v: (v > 0).astype(jnp.float32))

    def logits(theta, x):
        w1, b1, w2, b2 = jnp.split(theta, np.cumsum(sizes)[:-1])
        h = unit(x @ w1.reshape(inputs, HIDDEN) + b1)
        return h @ w2.reshape(HIDDEN, classes) + b2

    def loss(theta, x, y):
        return optax.softmax_cross_entropy_with_integer_labels(logits(theta, x), y).mean()

    strategy = Open_ES(
        population_size=POPULATION,
        solution=mean,
        optimizer=optax.adam(learning_rate),
        std_schedule=optax.constant_schedule(sigma),
    )
    params = strategy.default_params
    key = jax.random.key(seed)
    state = strategy.init(key, mean, params)

    @jax.jit
    def step(key, state, x, y):
        ask_key, tell_key = jax.random.split(key)
        population, state = strategy.ask(ask_key, state, params)
        fitness = jax.vmap(loss, in_axes=(0, None, None))(population, x, y)
        state, _ = strategy.tell(tell_key, population, fitness, state, params)
        return state

    x, y = data["x_train"], data["y_train"]
    for _ in range(EPOCHS):
        order = rng.permutation(len(x))
        for start in range(0, len(x), BATCH):
            key, subkey = jax.random.split(key)
            batch = order[start : start + BATCH]
            state = step(subkey, state, x[batch], y[batch])

    def accuracy(name):
        predicted = jnp.argmax(logits(state.mean, data[f"x_{name}"]), axis=1)
        return float(jnp.mean(predicted == data[f"y_{name}"]))

    return accuracy("validation"), accuracy("test")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="openes_parity.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--export", help="write glr-train's split to this .npz (needs keras_glr)")
    parser.add_argument("--data", help="the .npz of --export (needs evosax)")
    parser.add_argument("--activation", default="sigmoid", choices=("sigmoid", "step"))
    args = parser.parse_args(argv)
    if args.export:
        return export(args.export)
    if not args.data:
        parser.error("give --export PATH (in keras_glr's environment) or --data PATH (where evosax is installed)")
    try:
        import evosax  # noqa: F401
    except ImportError:
        parser.error("--data needs evosax (and JAX): pip install evosax, in an environment of its own")
    import numpy as np

    data = dict(np.load(args.data))
    screened = []
    for rate in GRID[0]:
        for sigma in GRID[1]:
            validation, _ = train(data, args.activation, rate, sigma, seed=0)
            screened.append((validation, (rate, sigma)))
            print(f"  seed 0, lr {rate}, sigma {sigma}: validation {validation:.4f}", flush=True)
    rate, sigma = max(screened)[1]
    tests = [train(data, args.activation, rate, sigma, seed)[1] for seed in (0, 1, 2)]
    print(
        f"OpenES (evosax), {args.activation}, population {POPULATION}, lr {rate}, sigma {sigma}: test "
        + " / ".join(f"{t:.3f}" for t in tests)
        + f", mean {sum(tests) / 3:.3f}"
    )


if __name__ == "__main__":
    main()
