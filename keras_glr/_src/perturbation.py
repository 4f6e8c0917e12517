"""Weight perturbation (evolution strategies): noise on the weights instead of the neurons.

With the interface of `estimators.GLR` (`copies`, `one_pass`), for
`compile(estimator="weight-perturbation")`. The K copies of a step are K/2
antithetic pairs of Gaussian perturbations e_p ~ N(0, I) of every trainable
weight at once; each perturbed network (noiseless otherwise) runs the batch:

    g = 1/(K/2) sum_p (L(theta + sigma e_p) - L(theta - sigma e_p)) / (2 sigma) e_p

with L the batch's mean loss (times sample weights). g is unbiased for the
gradient of E_e[L(theta + sigma e)], the loss smoothed by Gaussian weight
noise of scale sigma (`perturbation_scale`); the loss is never
differentiated, so step units and the 0-1 loss train too. The perturbations
are drawn from a counter-based stream (row p of the step's key), never
stored: memory does not grow with K, and every chunk and replica of a step
sees the same e_p. The layers run in inference mode: the neuronal noise is
off, and normalization layers keep their moving statistics.

Fitness shaping (`fitness_shaping="centred-ranks"`, OpenES's): the K batch
losses L(theta +- sigma e_p) of a step are replaced by their centred ranks
u in [-0.5, 0.5] (`centred_ranks`), and

    g = 1/(K sigma) sum_p (u(+p) - u(-p)) e_p.

g no longer estimates the gradient of the smoothed loss, and any increasing
transform of the loss leaves it unchanged. As K grows it tends to the
gradient of E_e[F(L(theta + sigma e))], F the distribution function of the
perturbed losses held fixed (the quantile objective of IGO, Ollivier et al.
2017). For a loss linear in the weights, a . theta, its mean is
c_K a / (sigma |a|) with c_K = E[u(z_1) z_1], z_p = a . e_p / |a| (tested).
"""

import dataclasses
import math

import tensorflow as tf

from keras_glr._src import copies as copies_module
from keras_glr._src import streams

#: The Philox stream of the weight perturbations (a slot no noisy layer takes).
STREAM = streams.stream_id(2**31 - 1, 0)


def perturbation(variables, key, pair, stream=STREAM):
    """e_p for every variable, shapes as theirs: row `pair` of N(0, 1) values of the stream (`key`, `stream`)."""
    sizes = [math.prod(v.shape) for v in variables]
    length = 8 * math.ceil(sum(sizes) / 8)
    row = tf.reshape(streams.normal_rows(1, length, key, pair, stream=stream), [-1])
    parts = tf.split(row[: sum(sizes)], sizes)
    return [tf.reshape(part, v.shape) for part, v in zip(parts, variables)]


@dataclasses.dataclass(frozen=True)
class WeightPerturbation:
    """Antithetic Gaussian weight perturbation (OpenES; see the module docstring for the objectives).

    Args:
        loss: fn(y_true, y_pred) -> per-example loss values; never differentiated.
        scale: sigma, the perturbations' standard deviation.
        shaping: "none" (the losses themselves) or "centred-ranks".
    """

    loss: object
    scale: float = 0.01
    shaping: str = "none"

    def copies(self, copies):
        return copies

    def one_pass(self, model, x, y, sample_weight, first_example, step):
        """The estimate's share of this part of the batch: sum_p sum_b w_b (l_b(+) - l_b(-)) e_p / (sigma * terms)."""
        variables = model.trainable_variables
        others = [v.value for v in model.non_trainable_variables]

        def losses(values):
            outputs, _ = model.stateless_call(values, others, x, training=False)
            return copies_module.copy_losses(self.loss, y, outputs, sample_weight, 1)[0]

        if self.shaping == "centred-ranks":
            return self.ranked_pass(model, x, y, sample_weight, step, losses)

        def pair(p):
            return antithetic_pair(losses, variables, perturbation(variables, step.key, p), self.scale, step.terms)

        return along_directions(model, x, y, sample_weight, step.copies // 2, pair)

    def ranked_pass(self, model, x, y, sample_weight, step, losses):
        """sum_p (u(+p) - u(-p)) e_p / (K sigma), u the centred ranks of the whole batch's K losses.

        Two sweeps over the pairs: the first runs the K perturbed networks and
        keeps only their batch losses (summed over the replicas, so that every
        replica ranks the same population); the second regenerates each e_p
        and adds it with its weight. One perturbed network is held at a time.
        """
        variables, pairs = model.trainable_variables, step.copies // 2

        def pair_losses(p):
            plus, minus = both_sides(losses, variables, perturbation(variables, step.key, p), self.scale)
            return tf.stack([tf.reduce_sum(plus), tf.reduce_sum(minus)])

        mine = tf.map_fn(pair_losses, tf.range(pairs), fn_output_signature=tf.float32, parallel_iterations=1)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        population = mine
        if replicas > 1:
            population = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, mine)
        u = tf.reshape(centred_ranks(tf.reshape(population, [-1])), [pairs, 2])
        weights = (u[:, 0] - u[:, 1]) / (step.copies * self.scale * replicas)  # each replica adds 1 / replicas

        def term(p):
            return weights[p], perturbation(variables, step.key, p), tf.constant(0.0)

        estimate = along_directions(model, x, y, sample_weight, pairs, term)
        return dataclasses.replace(estimate, loss=tf.reduce_sum(mine))


def centred_ranks(values):
    """u_i = rank_i / (N - 1) - 0.5 for values of shape (N,): -0.5 for the lowest, 0.5 for the highest.

    Tied values share the mean of their ranks (a tied pair weighs its
    direction by 0).
    """
    values = tf.convert_to_tensor(values)
    below = tf.reduce_sum(tf.cast(values[None, :] < values[:, None], tf.float32), axis=1)
    tied = tf.reduce_sum(tf.cast(values[None, :] == values[:, None], tf.float32), axis=1)
    ranks = below + (tied - 1.0) / 2.0
    count = tf.cast(tf.size(values), tf.float32)
    return ranks / tf.maximum(count - 1.0, 1.0) - 0.5


def both_sides(losses, variables, direction, scale):
    """(losses at theta + sigma d, losses at theta - sigma d), the second pass after the first.

    One perturbed network at a time: the memory of one inference pass.
    """
    plus = losses([v + scale * d for v, d in zip(variables, direction)])
    with tf.control_dependencies([plus]):
        minus = losses([v - scale * d for v, d in zip(variables, direction)])
    return plus, minus


def antithetic_pair(losses, variables, direction, scale, terms):
    """(sum (L+ - L-) / (sigma terms), direction, sum (L+ + L-)) for the weights theta +- sigma d, run stateless.

    losses(values) -> the per-example losses of the network with weights `values`.
    """
    plus, minus = both_sides(losses, variables, direction, scale)
    return tf.reduce_sum(plus - minus) / (scale * terms), direction, tf.reduce_sum(plus + minus)


def along_directions(model, x, y, sample_weight, count, term):
    """The `copies.Pass` of an estimate that sums weight_k * d_k over `count` directions, never storing them.

    term(k) -> (weight_k, d_k aligned with the trainable variables, the loss
    the k-th term spent); the loop holds one direction at a time. The first
    copies for the metrics are the noiseless network's predictions.
    """
    variables = model.trainable_variables

    def body(k, gradients, total):
        weight, direction, spent = term(k)
        return k + 1, [g + weight * d for g, d in zip(gradients, direction)], total + spent

    zeros = [tf.zeros(v.shape, v.dtype) for v in variables]
    _, gradients, total = tf.while_loop(
        lambda k, *_: k < count, body, (tf.constant(0), zeros, tf.constant(0.0)), parallel_iterations=1
    )
    weights = None if sample_weight is None else tf.reshape(sample_weight, [-1])
    with tf.control_dependencies([total]):  # after the loop, not beside it: one network's activations at a time
        outputs = model(x, training=False)
    return copies_module.Pass(gradients, total, y, outputs, weights)
