"""`GLRModel` and `GLRSequential`: Keras models trained by the GLR estimator.

    model = GLRSequential([keras.Input((196,)),
                           NoisyDense(20, "step"), NoisyDense(10)])
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"],
                  copies=100)
    model.fit(x, y, epochs=5)

One training step (Algorithm 1 of the paper):
copies -> forward under the recorder -> per-copy loss -> centre ->
local estimates -> optimizer.apply -> metrics.
"""

import dataclasses

import keras
import tensorflow as tf

from keras_glr import estimators
from keras_glr import losses as glr_losses
from keras_glr import validation
from keras_glr.recording import recording
from keras_glr.recording import stream_key

_ZERO_ONE_NAMES = ("zero_one", "zero-one", "zero_one_loss", "0-1")


@dataclasses.dataclass(frozen=True)
class GLRConfig:
    """The estimator options given to `compile` (see `GLRTrainer.compile`)."""

    copies: int = 100
    baseline: str = "loo"
    antithetic: bool = False
    estimator: str = "glr"
    ste_slope: float = None
    copies_per_chunk: int = None


@dataclasses.dataclass
class Estimate:
    """One step's gradient estimate and what the metrics need.

    `loss` comes from all N = B * K copies; `y`, `y_pred` and `sample_weight`
    have one row per example, its first copy (see `_first_copies`).
    """

    gradients: list
    loss: object
    y: object
    y_pred: object
    sample_weight: object


def per_example_loss(loss):
    """Returns fn(y_true, y_pred) -> per-example losses, shape (N,).

    Accepts a Keras loss name, a `keras.losses.Loss` (its reduction is
    ignored) or any callable returning one value per example (extra trailing
    axes are averaged, as Keras does).
    """
    if isinstance(loss, keras.losses.Loss):
        fn = loss.call
    elif isinstance(loss, str):
        fn = keras.losses.get(loss)
    elif callable(loss):
        fn = loss
    else:
        raise ValueError(
            "GLRModel needs one loss for its single output: a Keras loss name, "
            f"a keras.losses.Loss or a callable. Received: loss={loss!r}"
        )

    def per_example(y_true, y_pred):
        values = tf.convert_to_tensor(fn(y_true, y_pred))
        if values.shape.rank == 0:
            raise ValueError(
                f"The loss {loss!r} returned a single number for the whole batch; "
                "GLR needs one loss value per example (reduction 'none'). Pass a "
                "keras.losses.Loss or a function returning shape (batch,)."
            )
        if values.shape.rank > 1:
            values = tf.reduce_mean(values, axis=list(range(1, values.shape.rank)))
        return tf.cast(values, "float32")

    return per_example


def _data_spec(x, y, sample_weight):
    """(x, y, sample_weight) as objects with `shape` and `dtype`, or None.

    From arrays and tensors as given, or from a tf.data.Dataset's
    `element_spec`; None where the shapes are unknown without reading data
    (generators, `PyDataset`s, nested inputs, no labels).
    """
    if isinstance(x, tf.data.Dataset):
        spec = x.element_spec
        if not isinstance(spec, tuple) or len(spec) not in (2, 3):
            return None
        data = tuple(spec) + (None,) * (3 - len(spec))
    else:
        data = (x, y, sample_weight)
    if data[1] is None:
        return None
    for item in data:
        if item is not None and not (hasattr(item, "shape") and hasattr(item, "dtype")):
            return None
    return data


def _first_copies(structure, copies):
    """Rows 0, K, 2K, ...: the first copy of each example, shape (B, ...).

    Training metrics read these: one noisy copy per example has the same
    expectation as all K copies, at 1/K of the cost (at K = 100 the
    metrics over all copies took a sixth of a step).
    """
    if copies == 1:
        return structure
    return tf.nest.map_structure(lambda t: None if t is None else t[::copies], structure)


def _repeat(structure, copies):
    """Repeats every row of every tensor `copies` times: row b -> rows b*K .. b*K + K - 1."""
    if copies == 1:
        return structure

    def repeat(t):
        if t is None:
            return None
        t = tf.convert_to_tensor(t)
        if t.shape.rank is None:
            return tf.repeat(t, copies, axis=0)
        tiled = tf.tile(tf.expand_dims(t, 1), [1, copies] + [1] * (t.shape.rank - 1))
        if t.shape[1:].is_fully_defined():
            return tf.reshape(tiled, [-1] + t.shape[1:].as_list())
        return tf.reshape(tiled, tf.concat([[-1], tf.shape(t)[1:]], axis=0))

    return tf.nest.map_structure(repeat, structure)


class GLRTrainer:
    """Mixin that trains a Keras model by the GLR estimator.

    Every layer with trainable weights must be noisy (`NoisyDense`,
    `NoisyConv2D`); weightless layers may sit anywhere.
    """

    def compile(
        self,
        optimizer="rmsprop",
        loss=None,
        loss_weights=None,
        metrics=None,
        *,
        copies=100,
        baseline="loo",
        antithetic=False,
        estimator="glr",
        ste_slope=None,
        copies_per_chunk=None,
        **kwargs,
    ):
        """Configures the model for training, as `keras.Model.compile`.

        Args:
            optimizer, loss, metrics, **kwargs: as in `keras.Model.compile`
                (same argument order; `loss_weights` must be None or 1: a
                GLR model has one output). In training, the reported loss
                is the mean over all copies and the metrics are computed on
                the first noisy copy of each example.
                `loss` may be any Keras loss or callable, differentiable or
                not, or "zero_one" for `keras_glr.losses.ZeroOneLoss`.
            copies: K, noise copies per example in each step.
            baseline: "loo" (default) subtracts the leave-one-out mean of the
                other copies of the same example; "none" subtracts nothing.
            antithetic: use noise in pairs (r, -r); needs an even `copies`.
            estimator: "glr" (default); "bp", ordinary backprop through the
                noiseless network; "bp-noise", backprop through the noisy
                network (reparameterised), averaged over `copies`; "bp-ste",
                as "bp-noise" with step and sign units passing the gradient
                straight through, and the 0-1 loss replaced by softmax
                cross-entropy of the outputs for the gradient only (the
                reported loss stays the 0-1 loss). The fair BP control for
                step networks.
            ste_slope: for "bp-ste": None passes the gradient through as the
                identity; a float s uses the derivative of sigmoid(s x).
            copies_per_chunk: bound on the rows (example copies) in one
                forward pass of a GLR step; None runs the batch at once.
                Larger batches are processed in chunks of whole examples
                (each with all K copies, so the baseline is unchanged) and the
                estimates are summed: the result equals the unchunked one.
        """
        if loss is None:
            raise ValueError(
                "GLRModel.compile needs a `loss`: the GLR estimator multiplies "
                "each copy's loss by its noise score. Received: loss=None"
            )
        if loss_weights not in (None, 1, 1.0):
            raise ValueError(
                "GLRModel has a single output, so `loss_weights` does not apply. "
                f"Received: loss_weights={loss_weights!r}. Pass metrics by keyword: "
                "compile(optimizer, loss, metrics=[...])."
            )
        if isinstance(loss, str) and loss.lower() in _ZERO_ONE_NAMES:
            loss = glr_losses.ZeroOneLoss()
        estimators.check_options(copies, baseline, antithetic, estimator, ste_slope)
        if copies_per_chunk is not None and (
            isinstance(copies_per_chunk, bool) or not isinstance(copies_per_chunk, int) or copies_per_chunk < 1
        ):
            raise ValueError(
                "Invalid value received for argument `copies_per_chunk`. Expected None or a "
                f"positive integer. Received: copies_per_chunk={copies_per_chunk!r}"
            )
        self._per_copy_loss = per_example_loss(loss)
        # GLR needs the loss values only: a cheaper function where one exists.
        values_only = glr_losses.forward_only(loss)
        self._per_copy_loss_values = per_example_loss(values_only) if values_only else self._per_copy_loss
        self._surrogate_loss = None  # what "bp-ste" differentiates for the 0-1 loss
        if isinstance(loss, glr_losses.ZeroOneLoss):
            self._surrogate_loss = glr_losses.cross_entropy_from_logits
        self.glr_config = GLRConfig(copies, baseline, antithetic, estimator, ste_slope, copies_per_chunk)
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)
        self._compile_config.config.update(dataclasses.asdict(self.glr_config))
        self._estimate_functions = {}
        if self.built and estimator == "glr":
            validation.check_layers(self)

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    # Training, evaluation and prediction -------------------------------------

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        estimate = self._estimate(x, y, sample_weight, self.glr_config.copies, self.glr_config.estimator)
        self.optimizer.apply(estimate.gradients, self.trainable_variables)
        batch_size = tf.shape(tf.nest.flatten(x)[0])[0]
        self._loss_tracker.update_state(estimate.loss, sample_weight=batch_size)
        if estimate.y_pred is None:  # chunked: the metrics were updated chunk by chunk
            return self.get_metrics_result()
        return self.compute_metrics(x, estimate.y, estimate.y_pred, estimate.sample_weight)

    def test_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        validation.assert_finite_inputs(x)
        return super().test_step(data)

    def fit(self, x=None, y=None, *args, **kwargs):
        self._check_ready(x, y)
        self._build_state_before_tracing(x, y, kwargs.get("sample_weight"))
        with validation.translate_errors():
            return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        validation.check_arrays(self, x, y)
        self._build_state_before_tracing(x, y, kwargs.get("sample_weight"))
        with validation.translate_errors():
            return super().evaluate(x, y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        validation.check_arrays(self, x, None)
        with validation.translate_errors():
            return super().predict(x, *args, **kwargs)

    def estimate_gradients(self, x, y, copies=None, sample_weight=None, estimator=None):
        """Returns the gradient estimate for one batch, without an optimizer step.

        Args:
            x: inputs, shape (B, ...).
            y: labels, shape (B,) or (B, C).
            copies: K; the compiled `copies` if None.
            sample_weight: optional per-example weights, shape (B,).
            estimator: "glr", "bp", "bp-noise" or "bp-ste"; the compiled one if None.

        Returns:
            list of tensors aligned with `model.trainable_variables`: the
            estimate of d/dtheta (1/B) sum_b w_b E[L_b].
        """
        copies = self.glr_config.copies if copies is None else copies
        estimator = estimator or self.glr_config.estimator
        estimators.check_options(copies, self.glr_config.baseline, self.glr_config.antithetic, estimator, self.glr_config.ste_slope)
        self._check_ready(x, y)
        key = (copies, estimator)
        if key not in self._estimate_functions:
            self._estimate_functions[key] = tf.function(
                lambda x, y, w: self._estimate(x, y, w, copies, estimator).gradients,
                autograph=False,
                reduce_retracing=True,
            )
        with validation.translate_errors():
            return list(self._estimate_functions[key](x, y, sample_weight))

    def noisy_forward(self, x, passes, straight_through=False):
        """Outputs of `passes` noisy forward passes, shape (B, passes, ...).

        Every noisy layer adds fresh noise in each pass, as at training time;
        the rest of the network runs in inference mode. Copies begin at the
        first noisy layer when the model is a chain. `straight_through`
        ({"slope": ...}) gives step and sign units a surrogate gradient.
        """
        fan_out = passes > 1 and self._can_fan_out()
        inputs = x if fan_out else _repeat(x, passes)
        with recording(copies=passes, fan_out=fan_out, local=False, straight_through=straight_through):
            outputs = self(inputs, training=False)
        return tf.reshape(outputs, tf.concat([[-1, passes], tf.shape(outputs)[1:]], axis=0))

    # The estimators -------------------------------------------------------------

    def _estimate(self, x, y, sample_weight, copies, estimator):
        validation.assert_finite_inputs(x)
        if estimator == "glr":
            return self._glr_estimate(x, y, sample_weight, copies)
        if estimator == "bp":
            return self._backprop_estimate(x, y, sample_weight, 1, noise=False)
        straight_through = {"slope": self.glr_config.ste_slope} if estimator == "bp-ste" else False
        return self._backprop_estimate(x, y, sample_weight, copies, True, straight_through)

    def _forward(self, x, copies, **record_options):
        """Runs the K-copy forward pass under a recorder; returns (y_pred, record)."""
        fan_out = copies > 1 and self._can_fan_out()
        if not fan_out:
            x = _repeat(x, copies)
        with recording(copies=copies, fan_out=fan_out, **record_options) as record:
            y_pred = self(x, training=True)
        return y_pred, record

    def _copy_losses(self, x, y, y_pred, sample_weight, copies, values_only=False):
        """Per-copy losses times sample weights, shape (N,), and repeated y, w.

        `values_only`: the losses will not be differentiated (GLR).
        """
        y = validation.assert_labels(y, y_pred)
        y = _repeat(y, copies)
        sample_weight = _repeat(sample_weight, copies)
        values = (self._per_copy_loss_values if values_only else self._per_copy_loss)(y, y_pred)
        if sample_weight is not None:
            values = values * tf.reshape(tf.cast(sample_weight, values.dtype), [-1])
        return values, y, sample_weight

    def _glr_estimate(self, x, y, sample_weight, copies):
        """The GLR estimate for one batch, in one pass or in chunks of examples.

        Each noisy layer draws one stream key per step; example b's noise is
        a fixed row of that stream (see `ForwardRecord`), so chunks and
        replicas see exactly the noise of a single pass over the batch.
        """
        keys = {layer.name: stream_key(layer.seed_generator.next()) for layer in self._noisy_layers()}
        batch = tf.shape(tf.nest.flatten(x)[0])[0]
        first = self._replica_index() * batch
        terms = tf.cast(batch * copies, "float32") * self._replicas()
        chunk = self.glr_config.copies_per_chunk
        if chunk is None or chunk >= copies * (tf.nest.flatten(x)[0].shape[0] or chunk + 1):
            estimate = self._glr_pass(x, y, sample_weight, copies, keys, first, terms, with_penalty=True)
            estimate.loss = estimate.loss / tf.cast(batch * copies, "float32")
            return estimate
        examples = max(1, chunk // copies)
        variables = self.trainable_variables

        def body(start, loss_sum, gradients):
            end = tf.minimum(start + examples, batch)
            part = lambda t: None if t is None else t[start:end]  # noqa: E731
            xs, ys, ws = (tf.nest.map_structure(part, t) for t in (x, y, sample_weight))
            piece = self._glr_pass(xs, ys, ws, copies, keys, first + start, terms, with_penalty=False)
            if self._compile_metrics is not None:
                self._compile_metrics.update_state(piece.y, piece.y_pred, piece.sample_weight)
            summed = [a if g is None else a + g for a, g in zip(gradients, piece.gradients)]
            return end, loss_sum + piece.loss, summed

        zeros = [tf.zeros_like(v) for v in variables]
        _, loss_sum, gradients = tf.while_loop(
            lambda start, *_: start < batch, body, (tf.constant(0), tf.constant(0.0), zeros)
        )
        with tf.GradientTape() as tape:
            penalty = self._regularization_penalty()
            if penalty is not None:
                penalty = penalty / self._replicas()
        if penalty is not None:
            extra = tape.gradient(penalty, variables)
            gradients = [g if e is None else g + e for g, e in zip(gradients, extra)]
        return Estimate(gradients, loss_sum / tf.cast(batch * copies, "float32"), None, None, None)

    def _glr_pass(self, x, y, sample_weight, copies, keys, first_example, terms, with_penalty):
        """Forward pass over x's K copies; returns its share of the estimate.

        `loss` in the result is the sum of the per-copy losses of the pass.
        """
        config = self.glr_config
        with tf.GradientTape() as tape:
            y_pred, record = self._forward(
                x, copies, noise=True, local=True, antithetic=config.antithetic, keys=keys, first_example=first_example
            )
            penalty = self._regularization_penalty() if with_penalty else None
            if penalty is not None:
                penalty = penalty / self._replicas()
        validation.check_layers(self)  # after the forward pass has built every layer
        losses, y_rep, w_rep = self._copy_losses(x, y, y_pred, sample_weight, copies, values_only=True)
        losses = tf.stop_gradient(losses)
        centred = estimators.centre_losses(losses, copies, config.baseline, config.antithetic)
        gradients = estimators.local_gradients(
            tape, record.entries, centred / terms, self.trainable_variables, penalty
        )
        self._check_gradients(gradients, "glr")
        return Estimate(gradients, tf.reduce_sum(losses), *_first_copies((y_rep, y_pred, w_rep), copies))

    def _backprop_estimate(self, x, y, sample_weight, copies, noise, straight_through=False):
        config = self.glr_config
        with tf.GradientTape() as tape:
            y_pred, _ = self._forward(
                x, copies, noise=noise, local=False, antithetic=noise and config.antithetic,
                straight_through=straight_through,
            )
            losses, y_rep, w_rep = self._copy_losses(x, y, y_pred, sample_weight, copies)
            loss = tf.reduce_mean(losses)
            objective = loss
            if straight_through and self._surrogate_loss is not None:
                surrogate = tf.cast(self._surrogate_loss(y_rep, y_pred), losses.dtype)
                if w_rep is not None:
                    surrogate = surrogate * tf.reshape(tf.cast(w_rep, surrogate.dtype), [-1])
                objective = tf.reduce_mean(surrogate)
            objective = objective / self._replicas()
            penalty = self._regularization_penalty()
            if penalty is not None:
                objective = objective + penalty / self._replicas()
        gradients = tape.gradient(objective, self.trainable_variables)
        self._check_gradients(gradients, config.estimator if noise else "bp")
        return Estimate(gradients, tf.stop_gradient(loss), *_first_copies((y_rep, y_pred, w_rep), copies))

    # Helpers ------------------------------------------------------------------

    def _build_state_before_tracing(self, x, y, sample_weight):
        """Creates the optimizer's and the metrics' variables from the data's shapes.

        A tf.function whose first trace creates variables is traced a second
        time; Keras creates these variables inside the first trace unless it
        runs under a distribution strategy. Building them first, from array
        shapes or a dataset's `element_spec` (no data is read), makes the
        first `fit` or `evaluate` trace its step once.
        """
        if not self.built or not hasattr(self, "_symbolic_build"):
            return
        spec = _data_spec(x, y, sample_weight)
        if spec is None:
            return
        try:
            with self.distribute_strategy.scope():
                self._symbolic_build(data_batch=spec)
        except Exception:  # noqa: BLE001 - an optimisation only: `fit` reports the data's problem itself
            return

    def _regularization_penalty(self):
        """Sum of the weight regularizers' penalties, or None.

        Read from the variables themselves, so that it does not depend on
        which forward pass ran last (activity losses are not included).
        """
        penalties = [
            tf.cast(v.regularizer(v), "float32")
            for v in self.trainable_variables
            if getattr(v, "regularizer", None) is not None
        ]
        return tf.add_n(penalties) if penalties else None

    def _check_gradients(self, gradients, estimator):
        missing = [v.path for v, g in zip(self.trainable_variables, gradients) if g is None]
        if not missing:
            return
        if estimator == "glr":
            raise ValueError(
                f"No GLR estimate for {missing}: the layers holding them were not "
                "called with noise in the forward pass. Every trainable weight "
                "must belong to a noisy layer that the model calls."
            )
        raise ValueError(
            f"Backpropagation (estimator='{estimator}') found no gradient for "
            f"{missing}: the network or the loss is not differentiable there "
            "(step or sign activations, the 0-1 loss). Use estimator='glr', or "
            "estimator='bp-ste' for step and sign units."
        )

    def _replicas(self):
        return tf.distribute.get_strategy().num_replicas_in_sync

    def _replica_index(self):
        """Index of this replica: its examples follow those of replicas before it."""
        context = tf.distribute.get_replica_context()
        return 0 if context is None else tf.cast(context.replica_id_in_sync_group, tf.int32)

    def _noisy_layers(self):
        from keras_glr.layers import NoisyLayer

        return [l for l in self._flatten_layers(include_self=False, recursive=True) if isinstance(l, NoisyLayer)]

    def _can_fan_out(self):
        """True when noise copies may start at the first noisy layer.

        That holds when the model is a chain: one input, and every layer takes
        a single tensor, so no pre-noise tensor meets a post-noise one.
        """
        if isinstance(self, keras.Sequential):
            return True
        if len(getattr(self, "inputs", None) or []) != 1:
            return False
        for layer in self.layers:
            for node in layer._inbound_nodes:
                if len(node.input_tensors) > 1:
                    return False
        return True

    def _check_ready(self, x, y):
        if not getattr(self, "compiled", False) or not hasattr(self, "glr_config"):
            raise RuntimeError(
                "The model must be compiled before training: call "
                "`model.compile(optimizer, loss, metrics, copies=...)` first."
            )
        validation.check_arrays(self, x, y)
        if self.built and self.glr_config.estimator == "glr":
            validation.check_layers(self)


@keras.saving.register_keras_serializable(package="keras_glr")
class GLRModel(GLRTrainer, keras.Model):
    """A functional Keras model trained by the GLR estimator.

    Build it like any functional model, `GLRModel(inputs, outputs)`, from
    noisy layers; compile with the GLR options; train with `fit`.
    `predict` and `evaluate` are deterministic unless a layer has
    `noisy_inference=True`.
    """


@keras.saving.register_keras_serializable(package="keras_glr")
class GLRSequential(GLRTrainer, keras.Sequential):
    """A Sequential-style `GLRModel`: `GLRSequential([layer, layer, ...])`."""
