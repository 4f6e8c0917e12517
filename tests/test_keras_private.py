"""The private Keras APIs the package needs still do what it relies on, in the installed Keras."""

import inspect

import keras
import numpy as np
import tensorflow as tf

import keras_glr
from keras_glr._src import keras_private
from keras_glr.layers import Noisy
from keras_glr.layers import NoisyDense


def _nested():
    inner = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="inner_dense")], name="inner")
    inputs = keras.Input((3,))
    outputs = keras.layers.Add(name="add")([inner(inputs), keras.layers.Dense(2, name="outer_dense")(inputs)])
    return keras.Model(inputs, outputs, name="outer"), inner


def test_sublayers_reach_nested_models_in_order():
    model, inner = _nested()
    names = [layer.name for layer in keras_private.sublayers(model)]
    assert "inner_dense" in names and "outer_dense" in names and "inner" in names and "outer" not in names
    assert keras_private.sublayers(model, include_self=True)[0] is model


def test_graph_nodes_come_inputs_first_and_cover_every_call():
    model, inner = _nested()
    assert keras_private.is_graph(model) and not keras_private.is_graph(keras.layers.Dense(2))
    operations = [node.operation.name for node in keras_private.graph_nodes(model) if node.input_tensors]
    assert operations.index("add") > max(operations.index("inner"), operations.index("outer_dense"))
    assert set(operations) == {"inner", "outer_dense", "add"}


def test_own_trainable_variables_leave_out_the_sublayers():
    block = Noisy(keras.layers.Dense(4))
    block.build((None, 3))
    wrapper = keras.layers.Dense(2)
    wrapper.build((None, 3))
    assert len(keras_private.own_trainable_variables(wrapper)) == 2
    assert keras_private.own_trainable_variables(block) == []  # its weights belong to the wrapped Dense


def test_compile_options_survive_saving(tmp_path):
    model = keras_glr.GLRSequential([keras.Input((3,)), NoisyDense(2)])
    model.compile("sgd", "sparse_categorical_crossentropy", copies=6, baseline="none")
    model.fit(np.zeros((4, 3), "float32"), np.zeros(4), epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert (loaded.glr_config.copies, loaded.glr_config.baseline) == (6, "none")


def test_the_loss_reported_is_the_estimators():
    model = keras_glr.GLRSequential([keras.Input((3,)), NoisyDense(2)])
    model.compile("sgd", "sparse_categorical_crossentropy", copies=4)
    model.build((None, 3))
    keras_private.update_loss(model, tf.constant(2.5), sample_weight=1)
    assert float(model.metrics[0].result()) == 2.5


def test_symbolic_build_creates_the_optimizer_state_from_shapes():
    model = keras_glr.GLRSequential([keras.Input((3,)), NoisyDense(2)])
    model.compile("adam", "sparse_categorical_crossentropy", copies=4)
    assert keras_private.can_build_symbolically(model)
    spec = (tf.TensorSpec((None, 3)), tf.TensorSpec((None,), tf.int64), None)
    keras_private.symbolic_build(model, spec)
    assert model.optimizer.built


def test_the_overridden_methods_exist_in_keras_with_the_arguments_the_hooks_pass():
    build = inspect.signature(keras.Model._maybe_symbolic_build).parameters
    assert {"iterator", "data_batch"} <= set(build)
    inputs = keras.Input((3,))
    functional = type(keras.Model(inputs, keras.layers.Dense(2)(inputs)))  # Keras makes functional models this class
    run = inspect.signature(functional._run_through_graph).parameters
    assert {"inputs", "operation_fn"} <= set(run)
    model = keras_glr.GLRModel(inputs, NoisyDense(2)(inputs))
    assert type(model)._run_through_graph is keras_private.GraphHooks._run_through_graph  # the hook is what runs


def test_strategies_without_workers_are_not_multi_worker():
    assert keras_private.in_multi_worker_mode(tf.distribute.get_strategy()) is False
    model = keras_glr.GLRSequential([keras.Input((3,)), NoisyDense(2)])
    assert keras_private.has_strategy(model) is False


def test_the_gradient_cut_keeps_the_keras_mask():
    ids = tf.constant([[3, 1, 0]])
    embedded = keras.layers.Embedding(5, 2, mask_zero=True)(ids)
    cut = keras_private.stop_gradient_keeping_mask(embedded)
    np.testing.assert_array_equal(cut._keras_mask, [[True, True, False]])
    with tf.GradientTape() as tape:
        x = tf.Variable([1.0, 2.0])
        y = tf.reduce_sum(keras_private.stop_gradient_keeping_mask(x * x))
    assert tape.gradient(y, x) is None


def test_the_compiled_loss_tracks_each_outputs_loss():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, [keras.layers.Dense(2, name="a")(inputs), keras.layers.Dense(1, name="b")(inputs)])
    model.compile("sgd", ["mse", "mse"])
    y, y_pred = [np.zeros((4, 2)), np.zeros((4, 1))], [np.ones((4, 2)), 3 * np.ones((4, 1))]
    keras_private.track_output_losses(model, y, y_pred, None)
    results = {m.name: float(m.result()) for m in model.metrics if m.name in ("a_loss", "b_loss")}
    assert results == {"a_loss": 1.0, "b_loss": 9.0}
