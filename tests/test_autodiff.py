"""The estimators' autodiff: a VJP with cotangents (sparse ones made dense) and a forward-mode JVP."""

import numpy as np
import tensorflow as tf

from keras_glr._src import autodiff


def test_vjp_gives_each_source_its_cotangent_weighted_jacobian_and_dense_embedding_rows():
    w = tf.Variable([[1.0, 2.0], [3.0, 4.0]])
    table = tf.Variable(np.arange(6, dtype="float32").reshape(3, 2))
    x = tf.constant([[1.0, -1.0]])
    with autodiff.tape() as recorded:
        v = tf.matmul(x, w)  # (1, 2)
        rows = tf.gather(table, [2, 0])  # an embedding lookup: a sparse VJP
    found = autodiff.vjp(recorded, [v, rows], [w, table], [tf.constant([[1.0, 2.0]]), tf.ones((2, 2))])
    np.testing.assert_allclose(found[0], np.outer([1.0, -1.0], [1.0, 2.0]))  # x^T c
    assert not isinstance(found[1], tf.IndexedSlices)
    np.testing.assert_allclose(found[1], [[1.0, 1.0], [0.0, 0.0], [1.0, 1.0]])


def test_gradient_is_none_where_unconnected():
    a, b = tf.Variable(2.0), tf.Variable(3.0)
    with autodiff.tape() as recorded:
        y = a * a
    assert autodiff.gradient(recorded, y, [a, b]) == [tf.constant(4.0), None]


def test_jvp_is_the_directional_derivative():
    def f(values):
        (w,) = values
        return tf.reduce_sum(tf.sin(w) * w)

    w = tf.constant([0.3, -1.2, 2.0])
    tangent = tf.constant([1.0, 0.5, -2.0])
    value, slope = autodiff.jvp(f, [w], [tangent])
    exact = np.sum((np.cos(w) * w + np.sin(w)) * tangent)
    np.testing.assert_allclose(value, np.sum(np.sin(w) * w), rtol=1e-6)
    np.testing.assert_allclose(slope, exact, rtol=1e-5)
