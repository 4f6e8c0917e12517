"""Forward gradient (Baydin et al., 2022): one random tangent pushed forward, no backward pass.

With the interface of `estimators.GLR`, for `compile(estimator="forward-gradient")`.
Each of a step's K copies is a tangent v_k ~ N(0, I) over every trainable
weight; forward-mode differentiation (`autodiff.jvp`) gives
the directional derivative of the batch's mean loss along it in the same
pass as the loss itself, and

    g = 1/K sum_k (grad L . v_k) v_k

is unbiased for grad L, the gradient of the noiseless network's loss
(E[v v^T] = I). It needs derivatives, so step and sign units and the 0-1 loss
are refused (they have none: that is where GLR is needed). The tangents come
from a counter-based stream and are never stored.
"""

import dataclasses

import tensorflow as tf

from keras_glr import activations
from keras_glr._src import autodiff
from keras_glr._src import copies as copies_module
from keras_glr._src import keras_private
from keras_glr._src import recurrence
from keras_glr._src import streams
from keras_glr._src.perturbation import along_directions
from keras_glr._src.perturbation import perturbation
from keras_glr.layers import LIFCell

#: The Philox stream of the tangents (a slot no noisy layer takes, beside weight perturbation's).
STREAM = streams.stream_id(2**31 - 2, 0)


def check_differentiable(model, zero_one):
    """Raises ValueError naming what has no derivative: a step or sign unit, or the 0-1 loss."""
    if zero_one:
        raise ValueError(
            "The forward gradient differentiates the loss, and the 0-1 loss has no derivative. Use a differentiable "
            "loss (cross-entropy), or estimator='glr', which needs only the loss's values."
        )
    layers = keras_private.sublayers(model) if model is not None and model.built else []
    flat = [
        layer.name
        for layer in layers
        if getattr(layer, "activation", None) in (activations.step, activations.sign) or isinstance(layer, LIFCell)
    ]
    if flat:
        raise ValueError(
            f"The forward gradient differentiates the network, and the step or sign units (spikes) of {flat} have a "
            "zero derivative almost everywhere. Use estimator='glr' (no derivative needed), or smooth units "
            "(sigmoid, tanh)."
        )


@dataclasses.dataclass(frozen=True)
class ForwardGradient:
    """g = mean over K tangents v ~ N(0, I) of (grad L . v) v, by forward-mode differentiation.

    Args:
        loss: fn(y_true, y_pred) -> per-example losses, differentiable.
    """

    loss: object

    def copies(self, copies):
        return copies

    def one_pass(self, model, x, y, sample_weight, first_example, step):
        """This part's share: sum_k (grad sum_b w_b l_b . v_k) v_k / terms, terms = B * K."""
        variables = model.trainable_variables
        others = [v.value for v in model.non_trainable_variables]

        def tangent(k):
            tangents = perturbation(variables, step.key, k, stream=STREAM)

            def summed_loss(values):
                with recurrence.unrolled(model):  # forward-mode differentiation does not enter a while loop
                    outputs, _ = model.stateless_call(values, others, x, training=False)
                return tf.reduce_sum(copies_module.copy_losses(self.loss, y, outputs, sample_weight, 1)[0])

            summed, slope = autodiff.jvp(summed_loss, [tf.identity(v.value) for v in variables], tangents)
            return slope / step.terms, tangents, summed

        return along_directions(model, x, y, sample_weight, step.copies, tangent)
