"""Copies: fan-out decided from the graph, chunks, first copies."""

import keras
import numpy as np
import pytest

import keras_glr
from keras_glr import architectures
from keras_glr._src import checkpoints
from keras_glr._src import copies
from keras_glr._src import fan_out
from keras_glr._src import streams
from keras_glr.layers import NoisyDense

_CE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _residual_block(width, name):
    """x + NoisyDense(x): a pre-noise tensor meets a post-noise one inside the block."""
    inputs = keras.Input((width,))
    return keras.Model(inputs, keras.layers.Add()([inputs, NoisyDense(width, "sigmoid")(inputs)]), name=name)


def _chain():
    return keras_glr.GLRSequential(
        [keras.Input((4,)), keras.layers.Dense(4, trainable=False), NoisyDense(4), NoisyDense(3)]
    )


def _block_first():
    return keras_glr.GLRSequential([keras.Input((4,)), _residual_block(4, "block"), NoisyDense(3)])


def _block_after_noise():
    return keras_glr.GLRSequential(
        [keras.Input((4,)), NoisyDense(4, "sigmoid"), _residual_block(4, "block"), NoisyDense(3)]
    )


def _siamese():
    inputs = keras.Input((4,))
    left, right = NoisyDense(4, "sigmoid")(inputs), NoisyDense(4, "sigmoid")(inputs)
    return keras_glr.GLRModel(inputs, NoisyDense(3)(keras.layers.Concatenate()([left, right])))


def _shared_twice():
    inputs = keras.Input((4,))
    shared = NoisyDense(4, "sigmoid")
    return keras_glr.GLRModel(inputs, NoisyDense(3)(shared(shared(inputs))))


@pytest.mark.parametrize(
    "build, expected",
    [(_chain, True), (_block_first, False), (_block_after_noise, True), (_siamese, False), (_shared_twice, True)],
    ids=["chain", "residual_block_first", "residual_block_after_noise", "two_noisy_branches", "shared_twice"],
)
def test_fan_out_is_decided_from_the_graph(build, expected):
    assert fan_out.can_fan_out(build()) is expected


@pytest.mark.parametrize(
    "build",
    [_block_first, _block_after_noise, _siamese, _shared_twice],
    ids=["residual_block_first", "residual_block_after_noise", "two_noisy_branches", "shared_twice"],
)
def test_every_graph_trains_and_matches_the_tiled_forward(build, monkeypatch):
    model = build()
    model.compile(keras.optimizers.SGD(0.1), _CE, metrics=["accuracy"], copies=6)
    rng = np.random.default_rng(0)
    x, y = rng.uniform(size=(5, 4)).astype("float32"), np.arange(5) % 3
    states = checkpoints.noise_states(model)
    decided = model.estimate_gradients(x, y)
    checkpoints.restore_noise_states(model, states)
    monkeypatch.setattr(fan_out, "can_fan_out", lambda model: False)
    model.compile(keras.optimizers.SGD(0.1), _CE, metrics=["accuracy"], copies=6)
    tiled = model.estimate_gradients(x, y)
    assert any(np.any(g != 0) for g in decided)
    for a, b in zip(decided, tiled):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    monkeypatch.undo()
    history = model.fit(np.tile(x, (4, 1)), np.tile(y, 4), batch_size=5, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_first_copies_and_repeat_are_inverse():
    x = np.arange(12, dtype="float32").reshape(3, 4)
    repeated = np.asarray(copies.repeat(x, 5))
    assert repeated.shape == (15, 4)
    np.testing.assert_array_equal(repeated[5:10], np.tile(x[1], (5, 1)))
    np.testing.assert_array_equal(np.asarray(copies.first_copies(repeated, 5)), x)


@pytest.mark.parametrize("estimator", ["glr", "bp-noise", "bp-ste"])
def test_every_estimator_chunks_to_the_unchunked_estimate(estimator):
    model = keras_glr.GLRSequential([keras.Input((4,)), NoisyDense(5, "sigmoid"), NoisyDense(3)])
    x, y = np.random.default_rng(1).uniform(size=(7, 4)).astype("float32"), np.arange(7) % 3
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    estimates = []
    states = checkpoints.noise_states(model)
    for chunk in (None, 12):
        checkpoints.restore_noise_states(model, states)
        model.compile("sgd", loss, copies=6, estimator=estimator, copies_per_chunk=chunk)
        estimates.append(model.estimate_gradients(x, y))
    for a, b in zip(*estimates):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "k, layers, sizes, antithetic, groups",
    [
        (10, 3, None, False, ((0, 4), (4, 3), (7, 3))),
        (12, 2, None, True, ((0, 6), (6, 6))),
        (12, 3, None, True, ((0, 4), (4, 4), (8, 4))),
        (10, 2, (2, 8), False, ((0, 2), (2, 8))),
    ],
)
def test_layer_groups_split_the_copies(k, layers, sizes, antithetic, groups):
    assert fan_out.layer_groups(k, layers, sizes, antithetic) == groups


@pytest.mark.parametrize(
    "k, dimensions, unit, sizes",
    [
        (100, [20, 10], 1, [66, 34]),
        (100, [1568, 784, 10], 1, [65, 33, 2]),  # the small CNN: the logits keep a copy beyond their minimum
        (100, [1568, 784, 10], 2, [64, 34, 2]),
        (3, [5, 5, 5], 1, [1, 1, 1]),
        (10, [3, 1], 1, [7, 3]),
    ],
)
def test_proportional_sizes_follow_the_noise_dimensions(k, dimensions, unit, sizes):
    assert fan_out.proportional_sizes(k, dimensions, unit) == sizes
    starts = [sum(sizes[:g]) for g in range(len(sizes))]
    assert fan_out.layer_groups(k, len(sizes), "proportional", unit == 2, dimensions) == tuple(zip(starts, sizes))


def test_noise_dimensions_are_each_noisy_layers_output_size():
    assert fan_out.noise_dimensions(architectures.small_cnn((14, 14, 1), 10)) == [14 * 14 * 8, 7 * 7 * 16, 10]
    pooled = architectures.small_cnn((14, 14, 1), 10, pool="pre-activation")
    assert fan_out.noise_dimensions(pooled) == [7 * 7 * 8, 3 * 3 * 16, 10]
    with pytest.raises(ValueError, match="needs copies >= 6"):
        fan_out.proportional_sizes(4, [10, 10, 10], 2)


@pytest.mark.parametrize(
    "k, layers, sizes, antithetic, message",
    [
        (2, 3, None, False, "needs copies >= 3"),
        (4, 3, None, True, "needs copies >= 6"),
        (10, 2, (5, 4), False, "add up to copies=10"),
        (10, 2, (3, 7), True, "even"),
        (10, 3, (5, 5), False, "expected 3 positive"),
    ],
)
def test_layer_groups_refuse_an_impossible_split(k, layers, sizes, antithetic, message):
    with pytest.raises(ValueError, match=message):
        fan_out.layer_groups(k, layers, sizes, antithetic)


def _residual_graph():
    """Residual additions in the model's own graph, one around a noisy layer, one after the logits."""
    inputs = keras.Input((4,))
    h = NoisyDense(4, "sigmoid")(inputs)
    y = NoisyDense(4, "sigmoid")(NoisyDense(4, "sigmoid")(h))
    logits = NoisyDense(3)(keras.layers.Add()([h, y]))
    return keras_glr.GLRModel(inputs, keras.layers.Add()([logits, keras.layers.Dense(3, trainable=False)(h)]))


def _nested_residual_graph():
    inputs = keras.Input((4,))
    return keras_glr.GLRModel(inputs, NoisyDense(3)(_residual_block(4, "block")(NoisyDense(4, "sigmoid")(inputs))))


def _resnet():
    return architectures.resnet((8, 8, 1), 3, filters=(2, 4))


def _cnn(pool="output"):
    return architectures.small_cnn((6, 6, 1), 3, activation="relu", pool=pool)


def _cnn_pooled():
    return _cnn("pre-activation")


@pytest.mark.parametrize(
    "build, expected",
    [
        (_chain, True),
        (_cnn, True),
        (_cnn_pooled, True),
        (_siamese, True),
        (_residual_graph, True),
        (_resnet, True),
        (_block_first, False),
        (_block_after_noise, False),
        (_nested_residual_graph, False),
        (_shared_twice, False),
    ],
    ids=[
        "chain",
        "cnn",
        "cnn_pooled_pre_activation",
        "two_noisy_branches",
        "residual_graph",
        "resnet",
        "residual_block_first",
        "residual_block_after_noise",
        "residual_in_a_nested_model",
        "shared_twice",
    ],
)
def test_layerwise_fan_out_needs_each_noisy_layer_once_and_merges_in_the_models_own_graph(build, expected):
    """A GLRModel's own graph pads its merges; nested models and Sequential stacks must be chains."""
    assert fan_out.can_fan_out_by_layer(build()) is expected


@pytest.mark.parametrize(
    "build, split",
    [(_siamese, "even"), (_residual_graph, "even"), (_resnet, "even"), (_resnet, "uneven")],
    ids=["two_noisy_branches", "residual_graph", "resnet", "resnet_uneven_split"],
)
@pytest.mark.parametrize("antithetic", [False, True], ids=["mc", "antithetic"])
def test_layerwise_fan_out_through_merges_gives_the_rows_and_estimate_of_the_tiled_forward(
    build, split, antithetic, monkeypatch
):
    """Padding a less advanced tensor with its clean row gives the copies, the estimate and the
    normalization statistics of copies from the input, for even and uneven shares of the copies."""
    model = build()
    layers = len(keras_glr.layers.noisy_layers(model))
    sizes = (
        None if split == "even" else [2 * (1 + g % 3) for g in range(layers)]
    )  # 2, 4, 6, 2, ...: unequal weights per row
    k = 4 * layers if sizes is None else sum(sizes)
    rng = np.random.default_rng(0)
    shape = (8, 8, 1) if build is _resnet else (4,)
    x, y = rng.uniform(size=(5, *shape)).astype("float32"), np.arange(5) % 3
    groups = fan_out.layer_groups(k, layers, sizes, antithetic=antithetic)
    key = streams.stream_key([3, 4])
    results = []
    for by_layer in (True, False):
        monkeypatch.setattr(fan_out, "can_fan_out_by_layer", lambda model, f=by_layer: f)
        statistics = [v.numpy() for v in model.non_trainable_variables]  # the resnet's normalization moves them
        y_pred, record = copies.forward(model, x, k, groups=groups, key=key, antithetic=antithetic)
        assert [e.group is not None for e in record.entries] == [by_layer] * layers
        moved = [v.numpy() for v in model.non_trainable_variables]
        for variable, value in zip(model.non_trainable_variables, statistics):
            variable.assign(value)
        states = checkpoints.noise_states(model)
        model.compile(
            keras.optimizers.SGD(0.1),
            _CE,
            copies=k,
            injection="layerwise",
            antithetic=antithetic,
            copies_per_layer=sizes,
        )
        gradients = model.estimate_gradients(x, y)
        checkpoints.restore_noise_states(model, states)
        for variable, value in zip(model.non_trainable_variables, statistics):
            variable.assign(value)
        results.append((np.asarray(y_pred), gradients, moved))
    assert results[0][0].shape == (5 * k, 3)
    for a, b in zip(results[0][2], results[1][2]):  # normalization statistics of the K copies, as when tiled
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5, atol=1e-6)
    assert all(np.any(g != 0) for g in results[0][1])
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "options",
    [
        dict(),
        dict(antithetic=True),
        dict(sampling="latin", baseline="none"),
        dict(sampling="sobol", baseline="none"),
        dict(copies_per_layer=[2, 6, 4]),
        dict(antithetic=True, pool="pre-activation"),
    ],
    ids=["mc", "antithetic", "latin", "sobol", "uneven_groups", "antithetic_pooled_pre_activation"],
)
def test_layerwise_fan_out_gives_the_rows_and_estimate_of_the_tiled_forward(options, monkeypatch):
    """Each group's copies begin at its own layer: the same copies, in the same rows, and the same estimate."""
    options = dict(options)
    model = _cnn(options.pop("pool", "output"))
    model.compile(keras.optimizers.SGD(0.1), _CE, copies=12, injection="layerwise", **options)
    rng = np.random.default_rng(0)
    x, y = rng.uniform(size=(5, 6, 6, 1)).astype("float32"), np.arange(5) % 3
    groups = fan_out.layer_groups(12, 3, options.get("copies_per_layer"), options.get("antithetic", False))
    key = streams.stream_key([3, 4])
    results = []
    for by_layer in (True, False):
        monkeypatch.setattr(fan_out, "can_fan_out_by_layer", lambda model, f=by_layer: f)
        y_pred, record = copies.forward(
            model,
            x,
            12,
            groups=groups,
            key=key,
            antithetic=options.get("antithetic", False),
            sampling=options.get("sampling", "mc"),
        )
        assert [e.group is not None for e in record.entries] == [by_layer] * 3
        states = checkpoints.noise_states(model)
        model.compile(keras.optimizers.SGD(0.1), _CE, copies=12, injection="layerwise", **options)  # a fresh trace
        gradients = model.estimate_gradients(x, y)
        checkpoints.restore_noise_states(model, states)
        results.append((np.asarray(y_pred), gradients))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5, atol=1e-6)
    assert results[0][0].shape == (5 * 12, 3)
    assert any(np.any(g != 0) for g in results[0][1])
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
