"""The automatic differentiation the estimators need, in one place: VJPs with a tape, JVPs forward.

Every estimator's backend-specific calls go through here:

- `GLR` takes one VJP per step: the recorded pre-activations against the
  weights at cotangents w * s(r) (`vjp`); no gradient crosses between layers,
  since each layer's inputs were cut off in the forward pass;
- the backprop controls take the gradient of a scalar (`gradient`), and so
  does the weight penalty;
- the forward gradient pushes a tangent forward (`jvp`).

`tape()` watches a forward pass, as `tf.GradientTape` does.
"""

import tensorflow as tf


def tape():
    """A context that records a forward pass for `vjp` and `gradient` (`tf.GradientTape`)."""
    return tf.GradientTape()


def vjp(recorded, targets, sources, cotangents):
    """sum_i cotangents_i^T d targets_i / d sources, one tensor per source (None where unconnected).

    An embedding's VJP is sparse (the rows it looked up): it is made dense,
    so that chunks and replicas can add it.
    """
    found = recorded.gradient(
        targets, sources, output_gradients=cotangents, unconnected_gradients=tf.UnconnectedGradients.NONE
    )
    return [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in found]


def gradient(recorded, target, sources):
    """d target / d sources for a scalar target, one tensor per source (None where unconnected)."""
    return vjp(recorded, target, sources, None)


def jvp(function, primals, tangents):
    """(function(primals), the directional derivative d function(primals) . tangents), forward mode."""
    with tf.autodiff.ForwardAccumulator(primals, tangents) as accumulator:
        value = function(primals)
    return value, accumulator.jvp(value)
