"""The GLR estimate is unbiased: statistical tests against independent references.

(a) Smooth network (sigmoid, cross-entropy): the mean GLR estimate equals the
    mean reparameterised-backprop gradient through the same noisy network,
    computed here by hand in numpy.
(b) Step network with the 0-1 loss: the mean GLR estimate equals the
    derivative of E[L] by central finite differences under common random
    numbers, computed here in numpy.
Tolerance: 4 standard errors for every weight (docs/guides/estimator.md, "Correctness").
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_glr
from keras_glr.layers import NoisyDense
from keras_glr.noise import Gaussian
from keras_glr.noise import Laplace
from tests.stats import assert_agree
from tests.stats import mean_and_se

N_SE = 4.0
INPUT_DIM, HIDDEN, CLASSES = 4, 3, 3


def _batch(seed=0, size=3):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, (size, INPUT_DIM)).astype("float32")
    y = np.arange(size) % CLASSES
    return x, y.astype("int32")


def _model(activation, noise, loss, baseline="loo", antithetic=False, copies=2000, **options):
    model = keras_glr.GLRSequential(
        [
            keras.Input((INPUT_DIM,)),
            NoisyDense(HIDDEN, activation, noise=noise, bias_initializer=keras.initializers.RandomNormal(0, 0.5)),
            NoisyDense(CLASSES, noise=noise, bias_initializer=keras.initializers.RandomNormal(0, 0.5)),
        ]
    )
    model.compile("sgd", loss, copies=copies, baseline=baseline, antithetic=antithetic, **options)
    return model


def _glr_samples(model, x, y, replicates):
    """`replicates` independent GLR estimates, flattened: shape (R, P)."""
    return np.stack([np.concatenate([np.ravel(g) for g in model.estimate_gradients(x, y)]) for _ in range(replicates)])


def _draw(noise, rng, shape):
    if isinstance(noise, Gaussian):
        return rng.normal(0.0, noise.stddev, shape)
    return rng.laplace(0.0, noise.scale, shape)


def _reparameterised_gradients(weights, x, y, noise, draws, rng, noisy=(True, True)):
    """Per-draw backprop gradients of mean_b CE through the noisy sigmoid net.

    Plain numpy: v1 = x W1 + b1 + r1, a = sigmoid(v1), v2 = a W2 + b2 + r2,
    L = -log softmax(v2)[y]; `noisy` switches r1 and r2 off. Returns shape (draws, P).
    """
    w1, b1, w2, b2 = weights
    batch = len(x)
    v1 = x @ w1 + b1 + noisy[0] * _draw(noise, rng, (draws, batch, HIDDEN))
    a = 1.0 / (1.0 + np.exp(-v1))
    v2 = a @ w2 + b2 + noisy[1] * _draw(noise, rng, (draws, batch, CLASSES))
    p = np.exp(v2 - v2.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    g2 = (p - np.eye(CLASSES)[y]) / batch  # dL/dv2 for the batch mean
    g1 = (g2 @ w2.T) * a * (1.0 - a)
    parts = [
        np.einsum("bi,nbj->nij", x, g1),
        g1.sum(1),
        np.einsum("nbi,nbj->nij", a, g2),
        g2.sum(1),
    ]
    return np.concatenate([p.reshape(draws, -1) for p in parts], axis=1)


SMOOTH_CASES = {
    "gaussian": (Gaussian(1.0), "none", False),
    "gaussian_loo": (Gaussian(1.0), "loo", False),
    "laplace_loo": (Laplace(1.0), "loo", False),
    "gaussian_antithetic": (Gaussian(1.0), "none", True),
    "gaussian_antithetic_loo": (Gaussian(1.0), "loo", True),
}


@pytest.mark.parametrize("case", sorted(SMOOTH_CASES))
def test_glr_matches_reparameterised_backprop(case):
    noise, baseline, antithetic = SMOOTH_CASES[case]
    model = _model("sigmoid", noise, keras.losses.SparseCategoricalCrossentropy(from_logits=True), baseline, antithetic)
    x, y = _batch()
    glr_mean, glr_se = mean_and_se(_glr_samples(model, x, y, replicates=150))
    weights = [np.asarray(v, dtype=np.float64) for v in model.trainable_variables]
    reference = _reparameterised_gradients(weights, x, y, noise, 200_000, np.random.default_rng(7))
    ref_mean, ref_se = mean_and_se(reference)
    assert_agree(glr_mean, glr_se, ref_mean, ref_se, N_SE, what=f"GLR ({case}) vs reparameterised BP")


def test_the_comparison_detects_a_ten_percent_bias():
    """The test above can fail: a GLR estimate scaled by 0.9 is rejected."""
    noise = Gaussian(1.0)
    model = _model("sigmoid", noise, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _batch()
    glr_mean, glr_se = mean_and_se(_glr_samples(model, x, y, replicates=150))
    weights = [np.asarray(v, dtype=np.float64) for v in model.trainable_variables]
    ref_mean, ref_se = mean_and_se(_reparameterised_gradients(weights, x, y, noise, 200_000, np.random.default_rng(7)))
    with pytest.raises(AssertionError):
        assert_agree(0.9 * glr_mean, 0.9 * glr_se, ref_mean, ref_se, N_SE)


LAYERWISE_CASES = {
    "gaussian": (Gaussian(1.0), "none", False, None),
    "gaussian_loo": (Gaussian(1.0), "loo", False, None),
    "laplace_loo": (Laplace(1.0), "loo", False, None),
    "gaussian_antithetic_loo": (Gaussian(1.0), "loo", True, None),
    "laplace_antithetic_uneven_split": (Laplace(1.0), "loo", True, (600, 1400)),
    "gaussian_loo_uneven_split": (Gaussian(1.0), "loo", False, (600, 1400)),
    "gaussian_loo_proportional": (Gaussian(1.0), "loo", False, "proportional"),
}


def _layerwise_reference(model, x, y, noise):
    """Per layer, reparameterised BP with noise in that layer only: (mean, se) over all weights."""
    weights = [np.asarray(v, dtype=np.float64) for v in model.trainable_variables]
    first = INPUT_DIM * HIDDEN + HIDDEN
    only_first = mean_and_se(
        _reparameterised_gradients(weights, x, y, noise, 200_000, np.random.default_rng(7), (1, 0))
    )
    only_second = mean_and_se(
        _reparameterised_gradients(weights, x, y, noise, 200_000, np.random.default_rng(8), (0, 1))
    )
    return tuple(np.concatenate([a[:first], b[first:]]) for a, b in zip(only_first, only_second))


@pytest.mark.parametrize("case", sorted(LAYERWISE_CASES))
def test_layerwise_glr_matches_backprop_with_noise_in_that_layer_only(case):
    """injection="layerwise": each layer's estimate is unbiased for d/dtheta_g E_{r_g}[L],
    the loss smoothed by that layer's noise alone, the other layer noiseless."""
    noise, baseline, antithetic, split = LAYERWISE_CASES[case]
    model = _model(
        "sigmoid",
        noise,
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        baseline,
        antithetic,
        injection="layerwise",
        copies_per_layer=split,
    )
    x, y = _batch()
    glr_mean, glr_se = mean_and_se(_glr_samples(model, x, y, replicates=150))
    ref_mean, ref_se = _layerwise_reference(model, x, y, noise)
    assert_agree(glr_mean, glr_se, ref_mean, ref_se, N_SE, what=f"layer-wise GLR ({case}) vs BP with one noisy layer")


def test_the_layerwise_comparison_has_power():
    """The test above rejects a 10% bias, and rejects the all-layers objective where it differs."""
    noise = Gaussian(1.0)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model = _model("sigmoid", noise, loss, injection="layerwise")
    x, y = _batch()
    glr_mean, glr_se = mean_and_se(_glr_samples(model, x, y, replicates=150))
    ref_mean, ref_se = _layerwise_reference(model, x, y, noise)
    with pytest.raises(AssertionError):
        assert_agree(0.9 * glr_mean, 0.9 * glr_se, ref_mean, ref_se, N_SE)
    weights = [np.asarray(v, dtype=np.float64) for v in model.trainable_variables]
    all_mean, all_se = mean_and_se(_reparameterised_gradients(weights, x, y, noise, 200_000, np.random.default_rng(9)))
    with pytest.raises(AssertionError):
        assert_agree(glr_mean, glr_se, all_mean, all_se, N_SE)


STRATIFIED_CASES = {
    "latin_gaussian": ("latin", Gaussian(1.0), False, "all"),
    "latin_laplace": ("latin", Laplace(1.0), False, "all"),
    "latin_gaussian_antithetic": ("latin", Gaussian(1.0), True, "all"),
    "latin_gaussian_layerwise": ("latin", Gaussian(1.0), False, "layerwise"),
    "sobol_gaussian": ("sobol", Gaussian(1.0), False, "all"),
    "sobol_laplace_antithetic": ("sobol", Laplace(1.0), True, "all"),
    "sobol_gaussian_layerwise": ("sobol", Gaussian(1.0), False, "layerwise"),
}


@pytest.mark.parametrize("case", sorted(STRATIFIED_CASES))
def test_stratified_copies_keep_the_estimate_unbiased(case):
    """sampling="latin" or "sobol" (baseline "none"): unbiased for the same objective as Monte Carlo
    copies, d/dtheta E[L] (all layers noisy) or, layer-wise, the loss smoothed by each layer's own noise."""
    sampling, noise, antithetic, injection = STRATIFIED_CASES[case]
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model = _model("sigmoid", noise, loss, "none", antithetic, sampling=sampling, injection=injection)
    x, y = _batch()
    glr_mean, glr_se = mean_and_se(_glr_samples(model, x, y, replicates=150))
    if injection == "layerwise":
        ref_mean, ref_se = _layerwise_reference(model, x, y, noise)
    else:
        weights = [np.asarray(v, dtype=np.float64) for v in model.trainable_variables]
        ref_mean, ref_se = mean_and_se(
            _reparameterised_gradients(weights, x, y, noise, 200_000, np.random.default_rng(7))
        )
    assert_agree(glr_mean, glr_se, ref_mean, ref_se, N_SE, what=f"{sampling} GLR ({case}) vs reparameterised BP")
    with pytest.raises(AssertionError):  # power: a 10% bias is rejected
        assert_agree(0.9 * glr_mean, 0.9 * glr_se, ref_mean, ref_se, N_SE)


def _step_net_losses(weights, x, y, r1, r2):
    """0-1 losses of the step network for noise draws r1, r2: shape (draws, B)."""
    w1, b1, w2, b2 = weights
    hidden = (x @ w1 + b1 + r1 > 0).astype(np.float64)
    logits = hidden @ w2 + b2 + r2
    return (np.argmax(logits, axis=-1) != y).astype(np.float64)


def _finite_difference_gradients(weights, x, y, noise, draws, h, rng):
    """Per-draw central differences of mean_b L under common random numbers.

    Returns shape (draws, P): [L(theta + h e_i) - L(theta - h e_i)] / 2h, with
    the same noise on both sides.
    """
    r1 = _draw(noise, rng, (draws, len(x), HIDDEN))
    r2 = _draw(noise, rng, (draws, len(x), CLASSES))
    return _central_differences(weights, lambda moved: _step_net_losses(moved, x, y, r1, r2).mean(axis=1), h)


def _central_differences(weights, losses, h):
    """[losses(theta + h e_i) - losses(theta - h e_i)] / 2h for every weight, shape (draws, P).

    `losses(weights)` gives the per-draw mean loss with the draws held fixed (common random numbers).
    """
    columns = []
    for index, w in enumerate(weights):
        for flat in range(w.size):
            shifted = []
            for sign in (1.0, -1.0):
                moved = [v.copy() for v in weights]
                moved[index].flat[flat] += sign * h
                shifted.append(losses(moved))
            columns.append((shifted[0] - shifted[1]) / (2 * h))
    return np.stack(columns, axis=1)


@pytest.mark.parametrize("noise", [Gaussian(1.0), Laplace(1.0)], ids=["gaussian", "laplace"])
def test_glr_matches_finite_differences_for_step_and_zero_one_loss(noise):
    model = _model("step", noise, "zero_one", baseline="loo")
    x, y = _batch(seed=1)
    glr_mean, glr_se = mean_and_se(_glr_samples(model, x, y, replicates=150))
    weights = [np.asarray(v, dtype=np.float64) for v in model.trainable_variables]
    fd = _finite_difference_gradients(weights, x, y, noise, 200_000, 0.1, np.random.default_rng(3))
    fd_mean, fd_se = mean_and_se(fd)
    assert np.max(np.abs(fd_mean)) > 10 * np.max(fd_se), "the reference gradient is all noise"
    assert_agree(glr_mean, glr_se, fd_mean, fd_se, N_SE, what="GLR vs finite differences (step, 0-1 loss)")


def _conv_reference_gradients(weights, x, y, stddev, replicates, draws, pool=None):
    """Reparameterised backprop through the noisy conv net, in plain TF ops (`_reference_gradients`).

    v1 = conv(x, K) + c + r1, or maxpool(conv(x, K) + c) + r1 with `pool`,
    a = sigmoid(v1), v2 = flatten(a) W + b + r2, L = cross-entropy.
    Returns `replicates` means over `draws` noise draws.
    """

    def conv(xs, params):
        v1 = tf.nn.conv2d(xs, params[0], 1, "VALID") + params[1]
        return tf.nn.max_pool2d(v1, pool, pool, "VALID") if pool else v1

    return _reference_gradients(conv, weights, x, y, replicates, draws, stddev=stddev, seed=11)


@pytest.mark.parametrize("pool", [None, 2], ids=["conv", "conv_pooled_pre_activation"])
def test_conv_glr_matches_reparameterised_backprop(pool):
    """Objective: d/dtheta E[L] with noise on every conv unit (after the 2x2 max-pool of the pre-activation with
    `pool`)."""
    from keras_glr.layers import NoisyConv2D

    model = keras_glr.GLRSequential(
        [
            keras.Input((4, 4, 1)),
            NoisyConv2D(
                2, 3, activation="sigmoid", bias_initializer=keras.initializers.RandomNormal(0, 0.5), pool_size=pool
            ),
            keras.layers.Flatten(),
            NoisyDense(CLASSES, bias_initializer=keras.initializers.RandomNormal(0, 0.5)),
        ]
    )
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True), copies=2000)
    rng = np.random.default_rng(2)
    x = rng.uniform(size=(3, 4, 4, 1)).astype("float32")
    y = np.arange(3).astype("int32")
    glr_mean, glr_se = mean_and_se(_glr_samples(model, x, y, replicates=150))
    weights = [np.asarray(v, dtype=np.float64) for v in model.trainable_variables]
    reference = _conv_reference_gradients(weights, x.astype(np.float64), y, 1.0, 200, 1000, pool=pool)
    ref_mean, ref_se = mean_and_se(reference)
    assert_agree(glr_mean, glr_se, ref_mean, ref_se, N_SE, what="GLR conv vs reparameterised BP")
    with pytest.raises(AssertionError):  # and the comparison is sharp enough to fail
        assert_agree(0.9 * glr_mean, glr_se, ref_mean, ref_se, N_SE)


# Noise belongs to the call, not to the layer's name or seed (docs/guides/estimator.md, "What is local") ----


def _chain_reference(params, calls, x, y, noise, draws, rng):
    """Per-draw reparameterised backprop of mean_b CE through a chain of dense calls, in numpy.

    `params` is a list of (W, b); `calls` lists the index of the parameters
    each call uses, in order: v = a W + b + r with independent r per call,
    sigmoid after every call but the last (the logits). A parameter set used
    twice receives the sum of its calls' gradients. Returns shape (draws, P).
    """
    batch = len(x)
    activations, pre = [np.broadcast_to(x, (draws,) + x.shape)], []
    for index in calls:
        w, b = params[index]
        v = activations[-1] @ w + b + _draw(noise, rng, (draws, batch, w.shape[1]))
        pre.append(v)
        activations.append(1.0 / (1.0 + np.exp(-v)))
    logits = pre[-1]
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    upstream = (p - np.eye(logits.shape[-1])[y]) / batch  # dL/dv of the last call
    grads = [[np.zeros((draws,) + w.shape), np.zeros((draws,) + b.shape)] for w, b in params]
    for position in reversed(range(len(calls))):
        index = calls[position]
        grads[index][0] += np.einsum("nbi,nbj->nij", activations[position], upstream)
        grads[index][1] += upstream.sum(1)
        if position:
            a = activations[position]
            upstream = (upstream @ params[index][0].T) * a * (1.0 - a)
    return np.concatenate([g.reshape(draws, -1) for pair in grads for g in pair], axis=1)


def _shared_twice(noise):
    inputs = keras.Input((5,))
    shared = NoisyDense(5, "sigmoid", noise=noise, bias_initializer=keras.initializers.RandomNormal(0, 0.5))
    outputs = NoisyDense(3, noise=noise, bias_initializer=keras.initializers.RandomNormal(0, 0.5))(
        shared(shared(inputs))
    )
    return keras_glr.GLRModel(inputs, outputs), [0, 0, 1]


def _nested_with_equal_names(noise):
    inner_inputs = keras.Input((5,))
    inner = keras.Model(inner_inputs, NoisyDense(3, "sigmoid", noise=noise, name="noisy")(inner_inputs), name="inner")
    inputs = keras.Input((5,))
    outputs = NoisyDense(3, noise=noise, name="noisy")(inner(inputs))
    return keras_glr.GLRModel(inputs, outputs), [0, 1]


def _equal_seeds(noise):
    model = keras_glr.GLRSequential(
        [keras.Input((5,)), NoisyDense(3, "sigmoid", noise=noise, seed=5), NoisyDense(3, noise=noise, seed=5)]
    )
    return model, [0, 1]


CALL_CASES = {
    "layer_called_twice": _shared_twice,
    "nested_equal_names": _nested_with_equal_names,
    "equal_seeds": _equal_seeds,
}


@pytest.mark.parametrize("case", sorted(CALL_CASES))
def test_every_call_has_its_own_noise(case):
    """Mean GLR estimate vs reparameterised BP with independent noise per call (4 SE), and a 10% bias is caught."""
    noise = Gaussian(1.0)
    model, calls = CALL_CASES[case](noise)
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True), copies=2000)
    rng = np.random.default_rng(4)
    x = rng.uniform(size=(3, 5)).astype("float32")
    y = np.arange(3).astype("int32")
    glr_mean, glr_se = mean_and_se(_glr_samples(model, x, y, replicates=150))
    values = [np.asarray(v, dtype=np.float64) for v in model.trainable_variables]
    params = [(values[0], values[1]), (values[2], values[3])]
    ref_mean, ref_se = mean_and_se(_chain_reference(params, calls, x.astype(np.float64), y, noise, 200_000, rng))
    assert_agree(glr_mean, glr_se, ref_mean, ref_se, N_SE, what=f"GLR ({case}) vs reparameterised BP")
    with pytest.raises(AssertionError):
        assert_agree(0.9 * glr_mean, 0.9 * glr_se, ref_mean, ref_se, N_SE)


# Any layer through `Noisy` (docs/guides/estimator.md, "What is local") -------------------------------


def _wrapped_cases():
    """name -> (input array, the wrapped layer, reference f(x, params) in plain TF ops)."""
    rng = np.random.default_rng(5)
    normal = keras.initializers.RandomNormal(0.0, 0.5, seed=1)
    around_one = keras.initializers.RandomNormal(1.0, 0.5, seed=2)

    def conv1d(x, p):
        return tf.nn.conv1d(x, p[0], 1, "VALID") + p[1]

    def embedding(x, p):
        return tf.gather(p[0], x)

    def layer_norm(x, p):
        mean, variance = tf.nn.moments(x, [1], keepdims=True)
        return p[0] * (x - mean) / tf.sqrt(variance + 1e-3) + p[1]

    moving_mean, moving_variance = rng.normal(0.3, 0.2, 4), rng.uniform(0.5, 2.0, 4)

    def batch_norm(x, p):
        return p[0] * (x - moving_mean) / np.sqrt(moving_variance + 1e-3) + p[1]

    def residual(x, p):
        return x + tf.nn.relu(tf.nn.conv1d(x, p[0], 1, "SAME") + p[1])

    def block():
        inputs = keras.Input((5, 2))
        inner = keras.layers.Conv1D(2, 3, padding="same", activation="relu", bias_initializer=normal)(inputs)
        return keras.Model(inputs, keras.layers.Add()([inputs, inner]), name="residual_block")

    norm = keras.layers.BatchNormalization(
        momentum=1.0,
        gamma_initializer=around_one,
        beta_initializer=normal,
        moving_mean_initializer=keras.initializers.Constant(moving_mean),
        moving_variance_initializer=keras.initializers.Constant(moving_variance),
    )
    return {
        "conv1d": (rng.uniform(size=(3, 5, 2)), keras.layers.Conv1D(2, 3, bias_initializer=normal), conv1d),
        "embedding": (
            rng.permutation(np.arange(12) % 6).reshape(3, 4),
            keras.layers.Embedding(6, 2),
            embedding,
        ),  # every row looked up
        "layer_normalization": (
            rng.uniform(size=(3, 4)),
            keras.layers.LayerNormalization(gamma_initializer=around_one, beta_initializer=normal),
            layer_norm,
        ),
        "batch_normalization_fixed_statistics": (rng.uniform(size=(3, 4)), norm, batch_norm),
        "residual_block": (rng.uniform(size=(3, 5, 2)), block(), residual),
    }


def _reference_gradients(f, weights, x, y, replicates, draws, stddev=1.0, seed=13):
    """Reparameterised backprop through v1 = f(x) + r1, a = sigmoid(v1), v2 = flatten(a) W + b + r2, CE; plain TF.

    f(x, params) uses all weights but the last two (the dense logits'); r ~ N(0, stddev^2).
    Returns `replicates` means over `draws` noise draws.
    """
    params = [tf.Variable(w) for w in weights]
    batch = x.shape[0]

    @tf.function
    def one_replicate():
        xs = tf.repeat(x, draws, axis=0)
        ys = tf.repeat(y, draws, axis=0)
        with tf.GradientTape() as tape:
            v1 = f(xs, params[:-2])
            v1 += tf.random.normal(tf.shape(v1), stddev=stddev, dtype=tf.float64)
            a = tf.reshape(tf.sigmoid(v1), [batch * draws, -1])
            v2 = a @ params[-2] + params[-1]
            v2 += tf.random.normal(tf.shape(v2), stddev=stddev, dtype=tf.float64)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(ys, v2))
        return tf.concat([tf.reshape(g, [-1]) for g in tape.gradient(loss, params)], 0)

    tf.random.set_seed(seed)
    return np.stack([one_replicate().numpy() for _ in range(replicates)])


@pytest.mark.parametrize("case", list(_wrapped_cases()))
def test_wrapped_layer_glr_matches_reparameterised_backprop(case):
    """Objective: d/dtheta E[L] with noise at the wrapped layer's output (a block's output: block-local inside)."""
    from keras_glr.layers import Noisy

    x, layer, reference_f = _wrapped_cases()[case]
    x = x if x.dtype.kind == "i" else x.astype("float32")
    model = keras_glr.GLRSequential(
        [
            keras.Input(x.shape[1:], dtype="int32" if x.dtype.kind == "i" else "float32"),
            Noisy(layer, activation="sigmoid"),
            keras.layers.Flatten(),
            NoisyDense(CLASSES, bias_initializer=keras.initializers.RandomNormal(0, 0.5)),
        ]
    )
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True), copies=2000)
    y = np.arange(3).astype("int32")
    glr_mean, glr_se = mean_and_se(_glr_samples(model, x, y, replicates=150))
    weights = [np.asarray(v, dtype=np.float64) for v in model.trainable_variables]
    reference = _reference_gradients(
        reference_f, weights, x if x.dtype.kind == "i" else x.astype(np.float64), y, 200, 1000
    )
    ref_mean, ref_se = mean_and_se(reference)
    assert_agree(glr_mean, glr_se, ref_mean, ref_se, N_SE, what=f"GLR through Noisy({case}) vs reparameterised BP")
    with pytest.raises(AssertionError):  # and the comparison is sharp enough to fail
        assert_agree(0.9 * glr_mean, glr_se, ref_mean, ref_se, N_SE)


def _attention(x, p, heads=2, key_dim=2):
    """Causal multi-head self-attention in plain TF ops: Keras's MultiHeadAttention(heads, key_dim) on (x, x)."""
    wq, bq, wk, bk, wv, bv, wo, bo = p
    q = (tf.einsum("btd,dhk->bthk", x, wq) + bq) / np.sqrt(key_dim)
    k = tf.einsum("btd,dhk->bthk", x, wk) + bk
    v = tf.einsum("btd,dhk->bthk", x, wv) + bv
    scores = tf.einsum("bshk,bthk->bhts", k, q)
    steps = x.shape[1]
    causal = np.tril(np.ones((steps, steps), bool))
    scores = tf.where(causal, scores, tf.constant(-1e9, scores.dtype))
    values = tf.einsum("bhts,bshk->bthk", tf.nn.softmax(scores, axis=-1), v)
    return tf.einsum("bthk,hko->bto", values, wo) + bo


def test_noisy_attention_glr_matches_reparameterised_backprop():
    """Objective: d/dtheta E[L] with noise at MultiHeadAttention's output; the layer called with two tensors and a
    keyword (query, value, use_causal_mask=True)."""
    from keras_glr.layers import Noisy

    normal = keras.initializers.RandomNormal(0.0, 0.7, seed=3)
    inputs = keras.Input((4, 2))
    attention = keras.layers.MultiHeadAttention(2, 2, kernel_initializer=normal, bias_initializer=normal)
    h = Noisy(attention, activation="sigmoid")(inputs, inputs, use_causal_mask=True)
    h = keras.layers.Flatten()(h)
    outputs = NoisyDense(CLASSES, bias_initializer=keras.initializers.RandomNormal(0, 0.5))(h)
    model = keras_glr.GLRModel(inputs, outputs)
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True), copies=2000)
    x = np.random.default_rng(6).uniform(size=(3, 4, 2)).astype("float32")
    y = np.arange(3).astype("int32")
    assert [v.path.split("/")[-2:] for v in model.trainable_variables[:8:2]] == [
        ["query", "kernel"],
        ["key", "kernel"],
        ["value", "kernel"],
        ["attention_output", "kernel"],
    ]
    glr_mean, glr_se = mean_and_se(_glr_samples(model, x, y, replicates=150))
    weights = [np.asarray(v, dtype=np.float64) for v in model.trainable_variables]
    reference = _reference_gradients(_attention, weights, x.astype(np.float64), y, 200, 1000)
    ref_mean, ref_se = mean_and_se(reference)
    # The key's bias adds the same score to every key of a query, which the softmax removes: its gradient is 0.
    key_bias = np.arange(20, 24)
    np.testing.assert_allclose(glr_mean[key_bias], 0.0, atol=1e-6)
    np.testing.assert_allclose(ref_mean[key_bias], 0.0, atol=1e-9)
    glr_mean, glr_se, ref_mean, ref_se = (np.delete(a, key_bias) for a in (glr_mean, glr_se, ref_mean, ref_se))
    assert_agree(glr_mean, glr_se, ref_mean, ref_se, N_SE, what="GLR through Noisy(MultiHeadAttention) vs BP")
    with pytest.raises(AssertionError):  # and the comparison is sharp enough to fail
        assert_agree(0.9 * glr_mean, glr_se, ref_mean, ref_se, N_SE)


def _two_output_reference(weights, x, y, parity, replicates, draws, seed=17):
    """Reparameterised BP of CE(digit) + 0.5 BCE(parity) through h = sigmoid(x W + b + r), two noisy heads; plain TF."""
    params = [tf.Variable(w) for w in weights]
    w1, b1, w2, b2, w3, b3 = params
    batch = x.shape[0]

    @tf.function
    def one_replicate():
        xs, ys, ps = (tf.repeat(t, draws, axis=0) for t in (x, y, parity))
        noise = lambda v: v + tf.random.normal(tf.shape(v), dtype=tf.float64)  # noqa: E731
        with tf.GradientTape() as tape:
            h = tf.sigmoid(noise(xs @ w1 + b1))
            digit, odd = noise(h @ w2 + b2), noise(h @ w3 + b3)
            ce = tf.nn.sparse_softmax_cross_entropy_with_logits(ys, digit)
            bce = tf.nn.sigmoid_cross_entropy_with_logits(ps[:, None], odd)[:, 0]
            loss = tf.reduce_sum(ce + 0.5 * bce) / (batch * draws)
        return tf.concat([tf.reshape(g, [-1]) for g in tape.gradient(loss, params)], 0)

    tf.random.set_seed(seed)
    return np.stack([one_replicate().numpy() for _ in range(replicates)])


def test_two_outputs_with_weighted_losses_glr_matches_reparameterised_backprop():
    """Objective: d/dtheta E[CE(digit) + 0.5 BCE(parity)], the noise at every noisy layer."""
    inputs = keras.Input((INPUT_DIM,))
    normal = keras.initializers.RandomNormal(0, 0.5)
    h = NoisyDense(HIDDEN, "sigmoid", bias_initializer=normal)(inputs)
    heads = [NoisyDense(CLASSES, bias_initializer=normal, name="digit")(h), NoisyDense(1, name="parity")(h)]
    model = keras_glr.GLRModel(inputs, heads)
    losses = [
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        keras.losses.BinaryCrossentropy(from_logits=True),
    ]
    model.compile("sgd", losses, loss_weights=[1.0, 0.5], copies=2000)
    x, y = _batch()
    parity = (y % 2).astype("float32")
    samples = np.stack(
        [np.concatenate([np.ravel(g) for g in model.estimate_gradients(x, [y, parity])]) for _ in range(150)]
    )
    glr_mean, glr_se = mean_and_se(samples)
    weights = [np.asarray(v, dtype=np.float64) for v in model.trainable_variables]
    reference = _two_output_reference(weights, x.astype(np.float64), y, parity.astype(np.float64), 200, 1000)
    ref_mean, ref_se = mean_and_se(reference)
    assert_agree(glr_mean, glr_se, ref_mean, ref_se, N_SE, what="GLR on two weighted outputs vs reparameterised BP")
    with pytest.raises(AssertionError):  # and the comparison is sharp enough to fail
        assert_agree(0.9 * glr_mean, glr_se, ref_mean, ref_se, N_SE)


# Spiking units in time: a LIF recurrence, noise on every step's current ------------


def _lif_losses(weights, x, y, r_current, r_out, leak=0.8, threshold=1.0):
    """Per-draw, per-example cross-entropy of the LIF network, in numpy.

    I_t = x_t W + b + r_t, u_t = leak u_{t-1} + I_t - threshold s_{t-1},
    s_t = 1[u_t > threshold]; logits = mean_t(s_t) V + c + r_out.
    r_current: (draws, T, B, units); r_out: (draws, B, classes). Returns (draws, B).
    """
    w, b, v, c = weights
    u = np.zeros(r_current.shape[:1] + r_current.shape[2:])
    s = np.zeros_like(u)
    total = np.zeros_like(u)
    for t in range(x.shape[1]):
        u = leak * u + x[:, t] @ w + b + r_current[:, t] - threshold * s
        s = (u - threshold > 0).astype(np.float64)
        total += s
    logits = (total / x.shape[1]) @ v + c + r_out
    logits -= logits.max(-1, keepdims=True)
    picked = np.take_along_axis(logits, np.broadcast_to(y[None, :, None], logits.shape[:2] + (1,)), -1)[..., 0]
    return np.log(np.exp(logits).sum(-1)) - picked


def test_lif_glr_matches_finite_differences_with_common_random_numbers():
    """Objective: d/dtheta E[L] with independent noise on the current at every step and on the readout (spikes never
    differentiated)."""
    from keras_glr.layers import LIFCell

    steps, features, units = 3, 2, 3
    model = keras_glr.GLRSequential(
        [
            keras.Input((steps, features)),
            keras.layers.RNN(
                LIFCell(units, bias_initializer=keras.initializers.RandomNormal(0.8, 0.3, seed=4)),
                return_sequences=True,
            ),  # the while-loop form: a GLR step unrolls it
            keras.layers.GlobalAveragePooling1D(),
            NoisyDense(CLASSES, bias_initializer=keras.initializers.RandomNormal(0, 0.5)),
        ]
    )
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True), copies=2000)
    rng = np.random.default_rng(6)
    x = rng.uniform(size=(3, steps, features)).astype("float32")
    y = np.arange(3).astype("int32")
    glr_mean, glr_se = mean_and_se(_glr_samples(model, x, y, replicates=150))
    weights = [np.asarray(v, dtype=np.float64) for v in model.trainable_variables]
    draws, h = 200_000, 0.1
    r_current = rng.normal(size=(draws, steps, 3, units))
    r_out = rng.normal(size=(draws, 3, CLASSES))
    fd = _central_differences(
        weights, lambda moved: _lif_losses(moved, x.astype(np.float64), y, r_current, r_out).mean(axis=1), h
    )
    fd_mean, fd_se = mean_and_se(fd)
    assert np.max(np.abs(fd_mean)) > 10 * np.max(fd_se), "the reference gradient is all noise"
    assert_agree(glr_mean, glr_se, fd_mean, fd_se, N_SE, what="GLR vs finite differences (LIF units in time)")
    with pytest.raises(AssertionError):  # and the comparison is sharp enough to fail
        assert_agree(0.9 * glr_mean, glr_se, fd_mean, fd_se, N_SE)


# Recurrent cells: backprop through time with independent noise at every step --------


def _recurrent_step(kind, x_t, state, kernel, recurrent, bias, r):
    """One step of a tanh, LSTM or GRU recurrence in plain TF, noise r on its pre-activations.

    GRU (Keras's reset_after form, bias (2, 3u)): r holds the gates' noise,
    then the candidate's, 3u values.
    """
    if kind == "gru":
        u = recurrent.shape[0]
        gates = (
            x_t @ kernel[:, : 2 * u]
            + state[0] @ recurrent[:, : 2 * u]
            + bias[0, : 2 * u]
            + bias[1, : 2 * u]
            + r[:, : 2 * u]
        )
        z, g = tf.split(tf.sigmoid(gates), 2, axis=-1)
        v_h = (
            x_t @ kernel[:, 2 * u :]
            + bias[0, 2 * u :]
            + g * (state[0] @ recurrent[:, 2 * u :] + bias[1, 2 * u :])
            + r[:, 2 * u :]
        )
        return (z * state[0] + (1 - z) * tf.tanh(v_h),)
    v = x_t @ kernel + state[0] @ recurrent + bias + r
    if kind == "tanh":
        return (tf.tanh(v),)
    i, f, g, o = tf.split(v, 4, axis=-1)
    c = tf.sigmoid(f) * state[1] + tf.sigmoid(i) * tf.tanh(g)
    return tf.sigmoid(o) * tf.tanh(c), c


def _bptt_reference(kind, weights, x, y, replicates, draws, seed=21):
    """Reparameterised BPTT: h_t = cell(x_t W + h_{t-1} U + b + r_t), logits = h_T V + c + r_out, CE; plain TF.

    (The GRU adds noise to its gates and to its candidate, `_recurrent_step`.)

    Every step and the readout draw independent N(0, 1) noise. Returns
    `replicates` means over `draws` noise draws, shape (replicates, P).
    """
    params = [tf.Variable(w) for w in weights]
    units = weights[1].shape[0]

    @tf.function
    def one_replicate():
        xs, ys = tf.repeat(x, draws, axis=0), tf.repeat(y, draws, axis=0)
        rows = tf.shape(xs)[0]
        with tf.GradientTape() as tape:
            state = (tf.zeros([rows, units], tf.float64),) * (2 if kind == "lstm" else 1)
            for t in range(x.shape[1]):
                r = tf.random.normal(
                    [rows, weights[0].shape[1]], dtype=tf.float64
                )  # 3u for the GRU: gates, then candidate
                state = _recurrent_step(kind, xs[:, t], state, *params[:3], r)
            logits = state[0] @ params[3] + params[4] + tf.random.normal([rows, CLASSES], dtype=tf.float64)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(ys, logits))
        return tf.concat([tf.reshape(g, [-1]) for g in tape.gradient(loss, params)], 0)

    tf.random.set_seed(seed)
    return np.stack([one_replicate().numpy() for _ in range(replicates)])


@pytest.mark.parametrize("kind", ["tanh", "lstm", "gru"])
def test_recurrent_glr_matches_backprop_through_time(kind):
    """Objective: d/dtheta E[L] with independent noise at every step's pre-activation and at the readout.

    The cell runs in `keras.layers.RNN`'s while-loop form (a GLR step unrolls it).
    """
    from keras_glr.layers import NoisyGRUCell
    from keras_glr.layers import NoisyLSTMCell
    from keras_glr.layers import NoisySimpleRNNCell

    steps, features, units = 3, 2, 3
    around = keras.initializers.RandomNormal(0.0, 0.5, seed=3)
    cell = {
        "tanh": lambda: NoisySimpleRNNCell(units, bias_initializer=around),
        "lstm": lambda: NoisyLSTMCell(units, bias_initializer=around, unit_forget_bias=False),
        "gru": lambda: NoisyGRUCell(units, bias_initializer=around),
    }[kind]()
    model = keras_glr.GLRSequential(
        [
            keras.Input((steps, features)),
            keras.layers.RNN(cell),
            NoisyDense(CLASSES, bias_initializer=keras.initializers.RandomNormal(0, 0.5)),
        ]
    )
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True), copies=2000)
    x = np.random.default_rng(8).uniform(size=(3, steps, features)).astype("float32")
    y = np.arange(3).astype("int32")
    glr_mean, glr_se = mean_and_se(_glr_samples(model, x, y, replicates=150))
    weights = [np.asarray(v, dtype=np.float64) for v in model.trainable_variables]
    ref_mean, ref_se = mean_and_se(_bptt_reference(kind, weights, x.astype(np.float64), y, 200, 1000))
    assert np.max(np.abs(ref_mean)) > 10 * np.max(ref_se), "the reference gradient is all noise"
    assert_agree(glr_mean, glr_se, ref_mean, ref_se, N_SE, what=f"GLR vs BPTT ({kind} recurrence)")
    with pytest.raises(AssertionError):  # and the comparison is sharp enough to fail
        assert_agree(0.9 * glr_mean, glr_se, ref_mean, ref_se, N_SE)


def test_a_converted_lstm_glr_matches_backprop_through_time():
    """Objective: as above, for `keras_glr.convert` of a plain `keras.layers.LSTM` network (noise N(0, 1) given)."""
    steps, features, units = 3, 2, 3
    around = keras.initializers.RandomNormal(0.0, 0.5, seed=4)
    plain = keras.Sequential(
        [
            keras.Input((steps, features)),
            keras.layers.LSTM(units, bias_initializer=around, unit_forget_bias=False),
            keras.layers.Dense(CLASSES, bias_initializer=around),
        ]
    )
    model = keras_glr.convert(plain, noise=Gaussian(1.0))
    assert [type(layer).__name__ for layer in model.layers] == ["RNN", "NoisyDense"]
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True), copies=2000)
    x = np.random.default_rng(9).uniform(size=(3, steps, features)).astype("float32")
    y = np.arange(3).astype("int32")
    glr_mean, glr_se = mean_and_se(_glr_samples(model, x, y, replicates=150))
    weights = [np.asarray(v, dtype=np.float64) for v in plain.trainable_variables]  # the original's weights
    ref_mean, ref_se = mean_and_se(_bptt_reference("lstm", weights, x.astype(np.float64), y, 200, 1000))
    assert np.max(np.abs(ref_mean)) > 10 * np.max(ref_se), "the reference gradient is all noise"
    assert_agree(glr_mean, glr_se, ref_mean, ref_se, N_SE, what="GLR of a converted LSTM vs BPTT")
    with pytest.raises(AssertionError):  # and the comparison is sharp enough to fail
        assert_agree(0.9 * glr_mean, glr_se, ref_mean, ref_se, N_SE)
