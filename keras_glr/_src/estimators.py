"""The GLR estimator, piece by piece (docs/guides/estimator.md: "The formula", "Correctness").

For a layer with pre-activation v = g(x; theta) + r and noise score s(r),

    d E[L] / d theta = E[ L * (dv/dtheta)^T s(r) ],

so the estimate for each layer is its own vector-Jacobian product of v with
respect to its weights at the cotangent L * s(r), averaged over copies. Losses
arrive as a flat vector of N = B * K per-copy values, copies of example b in
rows b*K .. b*K + K - 1.

Algorithm 1 of the paper, for one step (`GLRModel.train_step`):

    1. copies:   each example's K noise copies (`copies.forward`)
    2. forward:  one pass under the recorder; every noisy call draws its own
                 stream and reports (v, s(r))
    3. losses:   one loss per copy (values only, nothing is differentiated)
    4. centre:   subtract a baseline that does not depend on the copy's noise
    5. estimate: each call's own VJP at cotangent L * s(r), averaged over the
                 B * K copies, plus the exact gradient of the weight penalty
    6. apply:    the optimizer's update; then the metrics

Steps 1-4 and 5's first half are `GLR.one_pass`; 5's second half is
`penalty_gradients`.
"""

import dataclasses
import typing

import tensorflow as tf

from keras_glr import options
from keras_glr._src import autodiff
from keras_glr._src import copies as copies_module
from keras_glr._src import fan_out
from keras_glr.layers import noisy_layers
from keras_glr.options import BASELINES  # noqa: F401  (the names, declared once in `options`)
from keras_glr.options import ESTIMATORS  # noqa: F401
from keras_glr.options import INJECTIONS  # noqa: F401
from keras_glr.options import SAMPLINGS  # noqa: F401


def check_options(copies, baseline, antithetic, estimator, ste_slope=None):
    """Validates the GLR options; raises ValueError naming the bad argument (`options.EstimatorOptions.validate`)."""
    options.EstimatorOptions(
        copies=copies, baseline=baseline, antithetic=antithetic, estimator=estimator, ste_slope=ste_slope
    ).validate()


def check_sampling(sampling, baseline, estimator):
    """Validates `sampling`; raises ValueError naming the bad argument (`options.EstimatorOptions.validate`)."""
    options.EstimatorOptions(sampling=sampling, baseline=baseline, estimator=estimator).validate()


def check_injection(injection, copies_per_layer, estimator):
    """Validates the layer-wise options; raises ValueError naming the bad argument
    (`options.EstimatorOptions.validate`)."""
    options.EstimatorOptions(injection=injection, copies_per_layer=copies_per_layer, estimator=estimator).validate()


def centre_losses(losses, copies, baseline="loo", antithetic=False):
    """Subtracts a control variate that does not depend on a copy's own noise.

    Args:
        losses: per-copy losses, shape (B * K,).
        copies: K.
        baseline: "none" returns `losses`; "loo" subtracts from L_k the mean
            of the other copies of the same example,
            c_k = (sum_j L_j - L_k) / (K - 1). With antithetic pairs the
            partner of k is excluded as well:
            c_k = (sum_j L_j - L_k - L_partner(k)) / (K - 2).
        antithetic: whether copies 2j and 2j+1 are antithetic partners.

    Returns:
        centred losses L - c, shape (B * K,). Unbiased: E[c s(r_k)] = 0.
    """
    if baseline == "none":
        return losses
    per_example = tf.reshape(losses, [-1, copies])
    total = tf.reduce_sum(per_example, axis=1, keepdims=True)
    if antithetic:
        pairs = tf.reshape(per_example, [-1, copies // 2, 2])
        pair_sum = tf.reduce_sum(pairs, axis=2, keepdims=True)
        others = (total[:, :, None] - pair_sum) / (copies - 2)
        return tf.reshape(pairs - others, [-1])
    others = (total - per_example) / (copies - 1)
    return tf.reshape(per_example - others, [-1])


def target_and_cotangent(entry, weights):
    """(tensor, cotangent) whose VJP is the GLR estimate of the layer that recorded `entry` (a `recording.Entry`).

    sum_n weights[n] * s(r_n) * dv_n/dtheta. For a layer that fanned its
    examples out into copies, v_n = clean_b + r_n, so the K copies of
    example b are summed first: the VJP of `clean` at
    sum_k weights[b, k] * s(r_bk), shape (B, ...). With layer-wise groups
    each layer's term is a mean over its K_g copies (the weights scaled by
    K / K_g on its group, 0 elsewhere), and with antithetic pairs in a group
    w_2j s(r) + w_2j+1 s(-r) = (w_2j - w_2j+1) s(r) (s is odd), so half the
    noise is read.
    """
    if entry.row_scale is not None:
        weights = weights * tf.cast(entry.row_scale, weights.dtype)
    if entry.group is not None:
        start, size = entry.group
        weights = tf.reshape(weights, [-1, entry.copies])[:, start : start + size] * (entry.copies / size)
        if entry.pairs is not None:
            pair_weights = tf.reshape(weights[:, 0::2] - weights[:, 1::2], [-1])
            return entry.clean, entry.distribution.summed_weighted_score(entry.pairs, pair_weights, size // 2)
        return entry.clean, entry.distribution.summed_weighted_score(entry.noise, tf.reshape(weights, [-1]), size)
    if entry.clean is None:
        return entry.pre_activation, entry.weighted_score(weights)
    return entry.clean, entry.distribution.summed_weighted_score(entry.noise, weights, entry.copies)


def cotangents(entries, weights):
    """Returns (targets, cotangents): weights * s(r) for each recorded layer.

    Args:
        entries: `recording.Entry` list; each `noise` has shape (N, ...).
        weights: per-copy multipliers, shape (N,): the centred loss times the
            sample weight, divided by the number of terms averaged.

    A layer that fanned its examples out into copies gets the copies' sum of
    weights * s(r) at its per-example pre-activation (`target_and_cotangent`).
    """
    pairs = [target_and_cotangent(entry, weights) for entry in entries]
    return [t for t, _ in pairs], [c for _, c in pairs]


def local_gradients(tape, entries, weights, variables, penalty=None):
    """GLR estimate: each layer's own VJP of v at cotangent weights * s(r).

    The recorded pre-activations were computed from inputs with stopped
    gradients, so one `tape.gradient` call over all layers gives each weight
    only the term of its own layer: no gradient crosses between layers.

    Args:
        tape: the `tf.GradientTape` that watched the forward pass.
        entries: the `recording.Entry` list of that pass.
        weights: per-copy multipliers, shape (N,) (see `cotangents`).
        variables: the variables to estimate for.
        penalty: optional scalar weight penalty (regularizers), a function
            of the weights alone; its exact gradient is added.
    """
    targets, output_gradients = cotangents(entries, weights)
    if penalty is not None:
        targets.append(penalty)
        output_gradients.append(tf.ones_like(penalty))
    return autodiff.vjp(tape, targets, variables, output_gradients)


@dataclasses.dataclass(frozen=True)
class Step:
    """What every pass of one step shares.

    Attributes:
        copies: K, noise copies per example.
        key: the step's Philox key (`streams.next_key`).
        terms: B * K over the whole batch (all replicas): the estimate is a
            mean over that many terms.
    """

    copies: int
    key: object
    terms: object


@typing.runtime_checkable
class Estimator(typing.Protocol):
    """What `GLRModel.train_step` asks of an estimator (`GLR`, `backprop.Backprop`,
    `perturbation.WeightPerturbation`, `forward_gradient.ForwardGradient`).

    `copies(K)` is the number of copies a step runs per example (1 for the
    noiseless backprop); `one_pass(model, x, y, sample_weight,
    first_example, step)` runs one part of the batch (a chunk of whole
    examples, one replica's share) and returns its `copies.Pass`: gradients
    aligned with `model.trainable_variables` that sum, over the parts, to
    the step's estimate, the sum of its per-copy losses, and the first copy
    of each example for the metrics.
    """

    def copies(self, copies): ...

    def one_pass(self, model, x, y, sample_weight, first_example, step): ...


@dataclasses.dataclass(frozen=True)
class GLR:
    """The GLR estimator: d E[L] / d theta = E[ L * (dv/dtheta)^T s(r) ].

    Args:
        loss: fn(y_true, y_pred) -> per-copy loss values, shape (N,); it is
            never differentiated, so it may be discontinuous (0-1 loss).
        baseline: see `centre_losses`.
        antithetic: see `centre_losses`.
        injection: "all": every noisy layer is noisy on every copy, and each
            layer's estimate is unbiased for the gradient of E[L] under the
            noise of all layers. "layerwise": the copies of each example are
            split into groups, one per noisy layer (`fan_out.layer_groups`);
            on its group only that layer is noisy, and its estimate, a mean
            over its group, is unbiased for the gradient of E_{r_g}[L], the
            loss smoothed by that layer's noise alone (the other layers
            noiseless). Its variance no longer carries the other layers' noise.
        copies_per_layer: the group sizes (None: an even split; "proportional":
            in proportion to each layer's noise values per example).
        sampling: "mc" (independent copies), "latin" (each example's copies
            stratified coordinate by coordinate) or "sobol" (randomised
            Sobol points, `streams.call_noise`). Each copy keeps the noise's
            distribution, so with `baseline="none"` the estimate stays
            unbiased for the same objective.
    """

    loss: object
    baseline: str = "loo"
    antithetic: bool = False
    injection: str = "all"
    copies_per_layer: tuple = None
    sampling: str = "mc"

    def copies(self, copies):
        return copies

    def one_pass(self, model, x, y, sample_weight, first_example, step):
        """Algorithm 1, steps 1-5, on a part of the batch: its share of the estimate."""
        groups = None
        if self.injection == "layerwise":
            layers = len(noisy_layers(model))
            dimensions = fan_out.noise_dimensions(model) if self.copies_per_layer == "proportional" else None
            groups = fan_out.layer_groups(step.copies, layers, self.copies_per_layer, self.antithetic, dimensions)
        with autodiff.tape() as tape:
            y_pred, record = copies_module.forward(
                model,
                x,
                step.copies,
                local=True,
                antithetic=self.antithetic,
                key=step.key,
                first_example=first_example,
                groups=groups,
                sampling=self.sampling,
            )
        losses, y, sample_weight = copies_module.copy_losses(self.loss, y, y_pred, sample_weight, step.copies)
        losses = tf.stop_gradient(losses)
        centred = centre_losses(losses, step.copies, self.baseline, self.antithetic)
        gradients = local_gradients(tape, record.entries, centred / step.terms, model.trainable_variables)
        missing = [v.path for v, g in zip(model.trainable_variables, gradients) if g is None]
        if missing:
            raise ValueError(
                f"No GLR estimate for {missing}: the layers holding them were not "
                "called with noise in the forward pass. Every trainable weight "
                "must belong to a noisy layer that the model calls."
            )
        first = copies_module.first_copies((y, y_pred, sample_weight), step.copies)
        return copies_module.Pass(gradients, tf.reduce_sum(losses), *first)


def penalty_gradients(gradients, variables, replicas=1):
    """Adds the exact gradient of the weight regularizers' penalty.

    The penalty is read from the variables themselves (activity losses are
    not included) and shared among `replicas`, whose gradients are summed.
    """
    with autodiff.tape() as tape:
        penalties = [
            tf.cast(v.regularizer(v), "float32") for v in variables if getattr(v, "regularizer", None) is not None
        ]
        penalty = tf.add_n(penalties) / replicas if penalties else None
    if penalty is None:
        return gradients
    extra = autodiff.gradient(tape, penalty, variables)
    return [g if e is None else e if g is None else g + e for g, e in zip(gradients, extra)]


def make(name, loss, values_only, surrogate, chosen=None, **fields):
    """The estimator called `name` (one of `ESTIMATORS`), with the options it uses.

    Args:
        loss: fn(y_true, y_pred) -> per-copy losses, differentiable where
            the loss is.
        values_only: the same values, possibly cheaper, never differentiated.
        surrogate: what "bp-ste" differentiates in place of `loss`, or None.
        chosen: an `options.EstimatorOptions` (its defaults if None); `fields`
            replace some of them, e.g. `ste_slope=2.0`.
    """
    from keras_glr._src import backprop
    from keras_glr._src import forward_gradient
    from keras_glr._src import perturbation
    from keras_glr._src import spsa

    o = dataclasses.replace(chosen or options.EstimatorOptions(), **fields)
    if name == "forward-gradient":
        if surrogate is not None:  # the 0-1 loss (see `surrogate`)
            forward_gradient.check_differentiable(None, zero_one=True)
        return forward_gradient.ForwardGradient(loss)
    if name == "weight-perturbation":
        return perturbation.WeightPerturbation(values_only, o.perturbation_scale, o.fitness_shaping)
    if name == "spsa":
        return spsa.SPSA(values_only, o.perturbation_scale, o.spsa_directions)
    if name == "glr":
        split = o.copies_per_layer if o.copies_per_layer in (None, "proportional") else tuple(o.copies_per_layer)
        return GLR(values_only, o.baseline, o.antithetic, o.injection, split, o.sampling)
    if name == "bp":
        return backprop.Backprop(loss, noise=False)
    straight_through = {"slope": o.ste_slope} if name == "bp-ste" else False
    return backprop.Backprop(
        loss,
        noise=True,
        antithetic=o.antithetic,
        straight_through=straight_through,
        surrogate=surrogate if straight_through else None,
    )
