"""SPSA as MeZO runs it (Malladi et al. 2023): a few random directions, two passes each, weights perturbed in place.

With the interface of `estimators.GLR` (`copies`, `one_pass`), for
`compile(estimator="spsa")`. The K copies of a step are K/2 directions d_p
(`copies=2`: one direction, MeZO's default); for each, the weights are moved
to theta + sigma d_p, the batch runs, they are moved to theta - sigma d_p, the
batch runs again, and they are moved back:

    g = 1/(K/2) sum_p (L(theta + sigma d_p) - L(theta - sigma d_p)) / (2 sigma) d_p

with L the batch's mean loss. Directions (`spsa_directions`):

- "gaussian" (MeZO): d ~ N(0, I); g is unbiased for the gradient of
  E_d[L(theta + sigma d)], the loss smoothed by Gaussian weight noise, the
  objective of weight perturbation (`perturbation.py`), estimated here with
  the memory of inference.
- "rademacher" (classic SPSA): every entry +-1; g is unbiased for dL/dtheta
  when L is quadratic in the weights, and within O(sigma^2) of it otherwise.

Moving the variables in place needs no copy of the weights: a step holds
one direction at a time, regenerated from the step's counter-based stream
(never stored), and the network's own variables. Moving them back adds
sigma d to theta - sigma d, exact up to float rounding. Under a strategy with
several replicas the variables are mirrored and cannot move within one
replica, so each perturbed network runs stateless there (`stateless_call`),
the same estimate with a copy of the weights. The loss is never
differentiated: step units and the 0-1 loss train too.
"""

import dataclasses
import math

import tensorflow as tf

from keras_glr._src import copies as copies_module
from keras_glr._src import streams
from keras_glr._src.perturbation import STREAM
from keras_glr._src.perturbation import along_directions
from keras_glr._src.perturbation import antithetic_pair
from keras_glr._src.perturbation import perturbation


def rademacher(variables, key, index, stream=STREAM):
    """d_index for every variable, entries +-1 with equal odds: row `index` of uniforms of (`key`, `stream`)."""
    sizes = [math.prod(v.shape) for v in variables]
    length = 4 * math.ceil(sum(sizes) / 4)
    row = tf.reshape(streams.uniform_rows(1, length, key, index, stream=stream), [-1])[: sum(sizes)]
    signs = tf.where(row < 0.5, -1.0, 1.0)
    return [tf.reshape(part, v.shape) for part, v in zip(tf.split(signs, sizes), variables)]


@dataclasses.dataclass(frozen=True)
class SPSA:
    """Two-point SPSA along K/2 random directions per step (see the module docstring for its objective).

    Args:
        loss: fn(y_true, y_pred) -> per-example loss values; never differentiated.
        scale: sigma, the perturbation's size.
        directions: "gaussian" or "rademacher".
    """

    loss: object
    scale: float = 0.03
    directions: str = "gaussian"

    def copies(self, copies):
        return copies

    def direction(self, variables, key, index):
        """d_index, shapes as the variables'."""
        if self.directions == "rademacher":
            return rademacher(variables, key, index)
        return perturbation(variables, key, index)

    def one_pass(self, model, x, y, sample_weight, first_example, step):
        """The estimate's share of this part of the batch: sum_p sum_b w_b (l_b(+) - l_b(-)) d_p / (2 sigma terms)."""
        variables = model.trainable_variables
        in_place = tf.distribute.get_strategy().num_replicas_in_sync == 1
        others = [v.value for v in model.non_trainable_variables]

        def losses(values=None):
            if values is None:  # the variables as they stand (moved in place)
                outputs = model(x, training=False)
            else:
                outputs, _ = model.stateless_call(values, others, x, training=False)
            return copies_module.copy_losses(self.loss, y, outputs, sample_weight, 1)[0]

        def move(d, by):
            return [v.assign_add(by * e) for v, e in zip(variables, d)]

        def pair(p):
            d = self.direction(variables, step.key, p)
            if in_place:
                with tf.control_dependencies(move(d, self.scale)):
                    plus = losses()
                with tf.control_dependencies([plus, *move(d, -2.0 * self.scale)]):
                    minus = losses()
                with tf.control_dependencies([minus, *move(d, self.scale)]):
                    weight = tf.reduce_sum(plus - minus) / (self.scale * step.terms)
                return weight, d, tf.reduce_sum(plus + minus)
            return antithetic_pair(losses, variables, d, self.scale, step.terms)

        return along_directions(model, x, y, sample_weight, step.copies // 2, pair)
