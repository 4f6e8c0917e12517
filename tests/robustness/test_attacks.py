import importlib

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_glr
from keras_glr.layers import NoisyDense
from keras_glr.robustness import attacks
from tests.test_training_mnist import _mnist14


@pytest.fixture(scope="module")
def bp_mlp():
    (x, y), (x_test, y_test) = _mnist14()
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((196,)), keras.layers.Dense(50, "relu"), keras.layers.Dense(50, "relu"), keras.layers.Dense(10)]
    )
    model.compile(
        keras.optimizers.Adam(0.003), keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    model.fit(x, y, epochs=5, batch_size=64, verbose=0)
    right = model.predict(x_test, verbose=0).argmax(1) == y_test
    return model, x_test[right][:20], y_test[right][:20]


def test_fgsm_on_a_linear_model_equals_the_closed_form():
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(6, 3)).astype("float32"), rng.normal(size=3).astype("float32")
    x = rng.uniform(0.2, 0.8, size=(5, 6)).astype("float32")
    y = np.array([0, 1, 2, 0, 1])
    model_fn = lambda t: tf.matmul(t, w) + b  # noqa: E731
    got = attacks.get("fgsm").run(model_fn, tf.constant(x), tf.constant(y), 0.1)
    logits = x @ w + b
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    grad = (p - np.eye(3)[y]) @ w.T  # d CE / d x
    np.testing.assert_allclose(got, np.clip(x + 0.1 * np.sign(grad), 0, 1), atol=1e-6)


@pytest.mark.parametrize("name, norm", [("pgd", np.inf), ("pgd-l2", 2)])
def test_pgd_stays_in_the_eps_ball_and_the_box(bp_mlp, name, norm):
    model, x, y = bp_mlp
    eps = 0.1 if norm == np.inf else 1.0
    x_adv = np.asarray(attacks.get(name).run(model, tf.constant(x), tf.constant(y), eps))
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    distance = np.abs(x_adv - x).max(1) if norm == np.inf else np.sqrt(((x_adv - x) ** 2).sum(1))
    assert np.all(distance <= eps + 1e-5)
    assert (model.predict(x_adv, verbose=0).argmax(1) != y).mean() > 0.3


def test_spsa_stays_in_the_eps_ball_and_fools_a_bp_mlp_by_queries_alone(bp_mlp):
    model, x, y = bp_mlp
    queries = []

    def model_fn(t):  # numpy in, logits out: SPSA never asks for a gradient
        queries.append(len(t))
        return model.predict_on_batch(np.asarray(t))

    x_adv = attacks.get("spsa").run(model_fn, tf.constant(x), tf.constant(y), 0.1)
    assert x_adv.shape == x.shape and x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert np.all(np.abs(x_adv - x).max(1) <= 0.1 + 1e-6)
    assert (model.predict(x_adv, verbose=0).argmax(1) != y).mean() > 0.3
    assert sum(queries) == len(x) * (1 + 20 * (64 + 1))  # start, then 64 probes and one check per step


@pytest.mark.parametrize(
    "name, eps, distance",
    [("square", 0.1, lambda d: np.abs(d).max(1)), ("square-l2", 1.5, lambda d: np.linalg.norm(d, axis=1))],
)
def test_square_attack_stays_in_the_ball_and_beats_spsa_by_queries_alone(bp_mlp, name, eps, distance):
    model, x, y = bp_mlp
    queries = []

    def model_fn(t):  # numpy in, logits out: no gradient exists
        queries.append(len(t))
        return model.predict_on_batch(np.asarray(t))

    x_adv = attacks.get(name).run(model_fn, tf.constant(x), tf.constant(y), eps)
    assert x_adv.shape == x.shape and x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert np.all(distance(x_adv - x) <= eps + 1e-5)
    fooled = (model.predict(x_adv, verbose=0).argmax(1) != y).mean()
    spsa = attacks.get("spsa").run(model_fn, tf.constant(x), tf.constant(y), 0.1) if name == "square" else None
    assert fooled >= 0.75
    if spsa is not None:
        assert fooled >= (model.predict(spsa, verbose=0).argmax(1) != y).mean()
    assert sum(queries[:1]) == len(x) and len(queries) <= 1 + 1000 + (1 + 20 * 65 if spsa is not None else 0)


def test_square_attack_window_schedule_and_refusals():
    square = importlib.import_module("keras_glr.robustness.attacks.square")  # the package exports the function

    assert [square.window_fraction(0.8, i, 1000) for i in (0, 1, 5, 10, 30, 100, 999)] == [
        0.8,
        0.8,
        0.4,
        0.2,
        0.1,
        0.05,
        0.8 / 512,
    ]
    with pytest.raises(ValueError, match="norm"):
        attacks.square(lambda t: t, np.zeros((1, 4, 4, 1)), [0], 0.1, norm=1)
    with pytest.raises(ValueError, match="image_shape"):
        attacks.square(lambda t: t, np.zeros((1, 10)), [0], 0.1)


def test_spsa_margin_is_negative_exactly_when_misclassified():
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0]])
    np.testing.assert_allclose(attacks.spsa_margin(logits, np.array([0, 0])), [1.0, -3.0])


def test_lbfgs_finds_small_adversarial_examples_for_a_bp_mlp(bp_mlp):
    model, x, y = bp_mlp
    x_adv = attacks.lbfgs(model, x, y=y, binary_search_steps=5, max_iterations=50)
    fooled = model.predict(x_adv, verbose=0).argmax(1) != y
    assert fooled.mean() >= 0.9
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    l2 = np.sqrt(((x_adv - x) ** 2).sum(1))[fooled]
    assert np.median(l2) < 0.5 * np.median(np.sqrt((x**2).sum(1)))


def test_bpda_gives_non_zero_input_gradients_where_the_plain_gradient_is_zero():
    model = keras_glr.GLRSequential([keras.Input((8,)), NoisyDense(6, "step"), NoisyDense(3)])
    x = tf.constant(np.random.default_rng(0).uniform(size=(4, 8)).astype("float32"))
    y = tf.constant([0, 1, 2, 0])
    loss = lambda logits: tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))  # noqa: E731
    with tf.GradientTape() as tape:
        tape.watch(x)
        plain = loss(model(x))
    gradient = tape.gradient(plain, x)
    assert gradient is None or not np.any(gradient)
    bpda = attacks.bpda_model_fn(model)
    np.testing.assert_array_equal(bpda(x), model(x))
    with tf.GradientTape() as tape:
        tape.watch(x)
        surrogate = loss(bpda(x))
    assert np.count_nonzero(tape.gradient(surrogate, x)) > 0


def test_eot_averages_noisy_passes():
    model = keras_glr.GLRSequential([keras.Input((8,)), NoisyDense(6, "step", noisy_inference=True), NoisyDense(3)])
    x = tf.constant(np.ones((2, 8), "float32"))
    assert attacks.has_noisy_prediction(model)
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = attacks.eot_model_fn(model, samples=32)(x)
        target = tf.reduce_sum(logits[:, 0])
    assert logits.shape == (2, 3) and np.count_nonzero(tape.gradient(target, x)) > 0


def test_names_and_eps_are_checked():
    with pytest.raises(ValueError, match="Unknown attack: 'deepfool'"):
        attacks.parse_names("fgsm,deepfool")
    with pytest.raises(ValueError, match="every value must be a finite number >= 0"):
        attacks.parse_eps("0.1,-0.2")
    assert attacks.parse_eps("0,0.1") == (0.0, 0.1)


def test_carlini_wagner_finds_the_closest_boundary_point_of_a_linear_model():
    """Two classes, logits (0, w.x + b): the smallest L2 step to the other class is |w.x + b| / |w|, inside the box."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(6,)).astype("float32")
    x = (0.5 + 0.05 * rng.normal(size=(16, 6))).astype("float32")
    b = (-x @ w + rng.choice([-1.0, 1.0], 16) * rng.uniform(0.05, 0.2, 16)).mean()
    model_fn = lambda t: tf.stack([tf.zeros(tf.shape(t)[0]), tf.linalg.matvec(t, w) + b], axis=1)  # noqa: E731
    y = (x @ w + b > 0).astype("int64")
    x_adv = attacks.carlini_wagner_l2(model_fn, x, y=y)
    exact = np.abs(x @ w + b) / np.linalg.norm(w)
    ratio = np.linalg.norm(x_adv - x, axis=1) / exact
    fooled = (x_adv @ w + b > 0).astype("int64") != y
    assert fooled.all() and x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert ratio.min() > 1 - 1e-3  # never below the exact minimum (it is the minimum)
    assert np.median(ratio) < 1.01 and ratio.max() < 1.5, np.sort(
        ratio
    )  # Adam's steps are per coordinate: near, not at it


def test_every_attack_glr_evaluate_offers_runs_on_a_small_model(bp_mlp):
    model, x, y = bp_mlp
    x, y = x[:6], y[:6]
    for name in attacks.parse_names("all"):
        attack = attacks.get(name)
        if attack.members:
            continue  # the worst case over the others (tests/robustness/test_strong_attacks.py)
        x_adv = np.asarray(attack.run(model, tf.constant(x), tf.constant(y), 0.1 if attack.uses_eps else None))
        assert x_adv.shape == x.shape and np.all(np.isfinite(x_adv)), name
        assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0, name
