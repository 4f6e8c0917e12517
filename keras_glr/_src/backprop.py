"""The backprop controls: the same network trained by backpropagation.

Fair controls for GLR (docs/guides/robustness.md, "Fair controls: train the twin"), with the interface of
`estimators.GLR`:
    "bp":       the gradient of the mean loss of the noiseless network;
    "bp-noise": the reparameterised gradient through the noisy network,
                the same K copies and noise streams as GLR;
    "bp-ste":   as "bp-noise", with step and sign units passing gradients
                straight through and, for the 0-1 loss, softmax
                cross-entropy differentiated in its place.
"""

import dataclasses

import tensorflow as tf

from keras_glr._src import autodiff
from keras_glr._src import copies as copies_module


@dataclasses.dataclass(frozen=True)
class Backprop:
    """Backpropagation through the (noisy or noiseless) network.

    Args:
        loss: fn(y_true, y_pred) -> per-copy losses, shape (N,).
        noise: False for the noiseless network (one copy), True for K noisy copies.
        antithetic: noise in pairs (r, -r).
        straight_through: False, or {"slope": None or float} (see
            `keras_glr.activations.straight_through`).
        surrogate: fn(y_true, y_pred) differentiated in place of `loss`, or None.
    """

    loss: object
    noise: bool = True
    antithetic: bool = False
    straight_through: object = False
    surrogate: object = None

    def copies(self, copies):
        return copies if self.noise else 1

    def one_pass(self, model, x, y, sample_weight, first_example, step):
        """The mean gradient over this part's copies, weighted by its share of `step.terms`."""
        with autodiff.tape() as tape:
            y_pred, _ = copies_module.forward(
                model,
                x,
                step.copies,
                noise=self.noise,
                local=False,
                antithetic=self.noise and self.antithetic,
                straight_through=self.straight_through,
                key=step.key,
                first_example=first_example,
            )
            losses, y_copies, w_copies = copies_module.copy_losses(self.loss, y, y_pred, sample_weight, step.copies)
            objective = losses
            if self.surrogate is not None:
                objective, _, _ = copies_module.copy_losses(self.surrogate, y, y_pred, sample_weight, step.copies)
            objective = tf.reduce_sum(objective) / step.terms
        gradients = autodiff.gradient(tape, objective, model.trainable_variables)
        missing = [v.path for v, g in zip(model.trainable_variables, gradients) if g is None]
        if missing:
            name = "bp" if not self.noise else "bp-ste" if self.straight_through else "bp-noise"
            raise ValueError(
                f"Backpropagation (estimator='{name}') found no gradient for "
                f"{missing}: the network or the loss is not differentiable there "
                "(step or sign activations, the 0-1 loss). Use estimator='glr', or "
                "estimator='bp-ste' for step and sign units."
            )
        first = copies_module.first_copies((y_copies, y_pred, w_copies), step.copies)
        return copies_module.Pass(gradients, tf.reduce_sum(tf.stop_gradient(losses)), *first)
