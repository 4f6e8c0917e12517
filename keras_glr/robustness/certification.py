"""Certified robustness of a noisy network by randomized smoothing.

A GLR network adds noise r to the pre-activation u = A x + b of its first
noisy layer. Its noisy prediction f(u + r) (later layers' noise included)
defines the smoothed classifier g(x) = argmax_c P(f(u(x) + r) = c). With
p_A a lower bound on the top class's probability:

- Gaussian noise N(0, sigma^2) (Cohen, Rosenfeld & Kolter, 2019): g cannot
  change within the l2 radius sigma * Phi^-1(p_A) around u;
- Laplace noise of scale b (Teng, Lee & Yu, 2020): within the l1 radius
  -b * log(2 (1 - p_A)) around u.

Both hold for any base classifier, random ones included, so the noise of
later layers does not break them. An input perturbation d moves u by A d,
with ||A d|| <= ||A|| ||d||: the input-space radius is the pre-activation
radius divided by an upper bound on the operator norm of A
(`operator_norms.upper_bound`).

`certify` and `predict` are the CERTIFY and PREDICT procedures of Cohen et
al.: Monte Carlo counts of the noisy prediction, a one-sided Clopper-Pearson
bound (CERTIFY) or a binomial test (PREDICT), abstention as -1. Each holds
with probability at least 1 - alpha per example.
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf
from scipy import stats

from keras_glr import noise as noise_module
from keras_glr._src import copies
from keras_glr._src import fan_out
from keras_glr._src import keras_private
from keras_glr._src import streams
from keras_glr.layers import noisy_layers
from keras_glr.robustness import operator_norms

ABSTAIN = -1
# Layers that may sit between the input and the first noisy layer: they only
# rearrange values, so ||A d|| still bounds the change of the pre-activation.
_REARRANGING = (
    keras.layers.InputLayer,
    keras.layers.Flatten,
    keras.layers.Reshape,
    keras.layers.Permute,
    keras.layers.Identity,
)
_SELECTION, _ESTIMATION = 0, 1


@dataclasses.dataclass
class Certificate:
    """What `certify` returns, one entry per example.

    Attributes:
        prediction: (N,) int, the smoothed classifier's class, -1 to abstain.
        radius: (N,) float, the certified radius in input space (0 when abstaining).
        norm: "l2" (Gaussian noise) or "l1" (Laplace noise).
        p_lower: (N,) float, the lower confidence bound on the top class's probability.
        operator_norm: the upper bound on ||A||_{p->p} the radii are divided by.
        layer: the first noisy layer's name.
    """

    prediction: np.ndarray
    radius: np.ndarray
    norm: str
    p_lower: np.ndarray
    operator_norm: float
    layer: str

    def accuracy(self, y, radii):
        """Certified accuracy at each radius: the share of examples predicted as `y` with radius >= r, shape
        (len(radii),)."""
        y = np.asarray(y).reshape(-1)
        right = self.prediction == y
        return np.array([float(np.mean(right & (self.radius >= r))) for r in radii])


def clopper_pearson_lower(successes, trials, alpha):
    """One-sided (1 - alpha) lower confidence bound on a binomial proportion.

    The p with P(Binomial(trials, p) >= successes) = alpha, i.e. the alpha
    quantile of Beta(successes, trials - successes + 1); 0 when successes = 0.
    """
    successes = np.asarray(successes, dtype=np.float64)
    safe = np.maximum(successes, 1.0)
    return np.where(successes > 0, stats.beta.ppf(alpha, safe, trials - successes + 1), 0.0)


def preactivation_radius(p_lower, noise):
    """The certified radius around u: sigma Phi^-1(p) (Gaussian, l2) or -b log(2 (1 - p)) (Laplace, l1); 0 where p <=
    1/2."""
    p = np.asarray(p_lower, dtype=np.float64)
    with np.errstate(divide="ignore"):
        if isinstance(noise, noise_module.Gaussian):
            radius = noise.stddev * stats.norm.ppf(p)
        else:
            radius = -noise.scale * np.log(2.0 * (1.0 - p))
    return np.where(p > 0.5, radius, 0.0)


def first_noisy_layer(model):
    """The noisy layer that receives the input, and its certificate's norm.

    Raises ValueError when the model has no noisy layer, when its noise
    begins at more than one place, when anything but a reshape stands
    between the input and that layer, or when its noise has no certificate.
    """
    layers = noisy_layers(model)
    if not layers:
        raise ValueError(
            f"{model.name} has no noisy layer: randomized smoothing needs noise (a NoisyDense or NoisyConv2D)."
        )
    if not fan_out.can_fan_out(model):
        raise ValueError(
            f"The noise of {model.name} does not begin at one layer (several noisy layers read the input, the input "
            "bypasses the first one, or a recurrence reads it at every time step); the certificate needs exactly one "
            "noisy layer between the input and everything else."
        )
    first = layers[0]
    for layer in keras_private.sublayers(model):
        if layer is first:
            break
        if not isinstance(layer, _REARRANGING + (keras.Model,)):
            raise ValueError(
                f"{type(layer).__name__} layer {layer.name!r} comes before the first noisy layer {first.name!r}; the "
                "certificate bounds the input's effect through that layer's weights only, so only reshaping layers "
                f"({', '.join(t.__name__ for t in _REARRANGING)}) may come before it."
            )
    if isinstance(first.noise, noise_module.Gaussian):
        return first, "l2"
    if isinstance(first.noise, noise_module.Laplace):
        return first, "l1"
    raise ValueError(
        f"{first.name} has {first.noise!r} noise; certificates exist for Gaussian (l2) and Laplace (l1) noise."
    )


class _Counter:
    """Counts the noisy prediction's classes over draws, in calls of at most `batch_rows` rows."""

    def __init__(self, model, seed, batch_rows, progress):
        self.model, self.seed, self.batch_rows, self.progress = model, seed, batch_rows, progress
        self.calls = 0
        self.classes = int(model.outputs[0].shape[-1])
        self._count = tf.function(self._count_draws, reduce_retracing=True)

    def _count_draws(self, x, draws, key):
        outputs, _ = copies.forward(
            self.model, x, draws, training=False, local=False, key=key, purpose=streams.PREDICTION
        )
        labels = tf.argmax(tf.reshape(outputs, [tf.shape(x)[0], draws, -1]), axis=-1)
        return tf.reduce_sum(tf.one_hot(labels, self.classes, dtype=tf.int32), axis=1)

    def __call__(self, x, draws, phase):
        """(N, C) class counts of `draws` noisy predictions per example; `phase` keeps selection and estimation draws
        apart."""
        counts = np.zeros((len(x), self.classes), dtype=np.int64)
        per_call = min(draws, self.batch_rows)
        examples = max(1, self.batch_rows // per_call)
        for start in range(0, len(x), examples):
            batch = tf.constant(x[start : start + examples])
            done = 0
            while done < draws:
                n = min(per_call, draws - done)
                key = streams.stream_key(tf.constant([self.seed, 2 * self.calls + phase], tf.int32))
                counts[start : start + examples] += self._count(batch, n, key).numpy()
                self.calls += 1
                done += n
                if self.progress is not None:
                    self.progress.add(n * len(batch))
        return counts


def _check_arguments(x, num_samples, selection_samples, alpha):
    for name, value in (("num_samples", num_samples), ("selection_samples", selection_samples)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"Invalid {name}: {value!r}. Expected a positive integer.")
    if not 0 < alpha < 0.5:
        raise ValueError(f"Invalid alpha: {alpha!r}. Expected a probability in (0, 0.5), e.g. 0.001.")
    x = np.asarray(x, dtype=np.float32)
    if x.ndim < 2 or len(x) == 0:
        raise ValueError(f"Expected a batch of inputs, shape (N, ...) with N >= 1; received shape {x.shape}.")
    return x


def certify(
    model, x, num_samples=100_000, selection_samples=100, alpha=0.001, batch_rows=65_536, seed=0, progress=True
):
    """CERTIFY (Cohen et al., 2019, Algorithm 1) for every example of `x`.

    Args:
        model: a GLR model; its noisy prediction (every noisy layer adds
            noise, as `serve_noisy`) is the base classifier.
        x: inputs, shape (N, ...), the model's input shape.
        num_samples: estimation draws per example (n).
        selection_samples: draws that choose the top class (n0), independent of the others.
        alpha: each example's certificate fails with probability at most alpha.
        batch_rows: examples x draws per forward call (memory).
        seed: the draws' seed; the same seed gives the same certificate.
        progress: show a progress bar.

    Returns:
        a `Certificate`.
    """
    x = _check_arguments(x, num_samples, selection_samples, alpha)
    layer, norm = first_noisy_layer(model)
    bound = operator_norms.upper_bound(layer, x.shape[1:], norm)
    bar = keras.utils.Progbar(len(x) * (num_samples + selection_samples), unit_name="draw") if progress else None
    count = _Counter(model, seed, batch_rows, bar)
    top = count(x, selection_samples, _SELECTION).argmax(axis=1)
    counts = count(x, num_samples, _ESTIMATION)
    p_lower = clopper_pearson_lower(counts[np.arange(len(x)), top], num_samples, alpha)
    with np.errstate(divide="ignore", invalid="ignore"):  # a zero norm: the input cannot move u at all
        radius = preactivation_radius(p_lower, layer.noise) / bound
    prediction = np.where(p_lower > 0.5, top, ABSTAIN)
    return Certificate(prediction, np.where(prediction == ABSTAIN, 0.0, radius), norm, p_lower, bound, layer.name)


def predict(model, x, num_samples=10_000, alpha=0.001, batch_rows=65_536, seed=0, progress=False):
    """PREDICT (Cohen et al., 2019): the smoothed classifier's class, or -1 (abstain), shape (N,).

    Returns the top class of `num_samples` noisy predictions when a two-sided
    binomial test rejects a tie with the runner-up at level alpha; the
    returned class differs from g(x) with probability at most alpha.
    """
    x = _check_arguments(x, num_samples, 1, alpha)
    first_noisy_layer(model)
    bar = keras.utils.Progbar(len(x) * num_samples, unit_name="draw") if progress else None
    counts = _Counter(model, seed, batch_rows, bar)(x, num_samples, _ESTIMATION)
    order = np.argsort(-counts, axis=1, kind="stable")
    rows = np.arange(len(x))
    n_a, n_b = counts[rows, order[:, 0]], counts[rows, order[:, 1]]
    p_values = np.array([stats.binomtest(int(a), int(a + b), 0.5).pvalue for a, b in zip(n_a, n_b)])
    return np.where(p_values <= alpha, order[:, 0], ABSTAIN)
