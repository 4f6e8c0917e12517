"""`GLRModel` and `GLRSequential`: Keras models trained by the GLR estimator.

    model = GLRSequential([keras.Input((196,)),
                           NoisyDense(20, "step"), NoisyDense(10)])
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"],
                  copies=100)
    model.fit(x, y, epochs=5)

This module is the Keras face only: the constructor, `compile` and its
options, `fit` / `evaluate` / `predict`, and `train_step`, which reads like
Algorithm 1 of the paper. The formula is in `keras_glr._src.estimators`, copies
and chunks in `keras_glr._src.copies`, noise streams in `keras_glr._src.streams`,
checks of the data in `keras_glr._src.validation`.
"""

import dataclasses
import functools

import keras
import tensorflow as tf

from keras_glr import losses as glr_losses
from keras_glr import options
from keras_glr._src import copies as copies_module
from keras_glr._src import estimators
from keras_glr._src import forward_gradient
from keras_glr._src import keras_private
from keras_glr._src import memory
from keras_glr._src import outputs
from keras_glr._src import recording
from keras_glr._src import streams
from keras_glr._src import validation

_ZERO_ONE_NAMES = ("zero_one", "zero-one", "zero_one_loss", "0-1")


#: The options `compile` takes beyond Keras's own (`keras_glr.options.EstimatorOptions`).
GLRConfig = options.EstimatorOptions


COMPILE_OPTIONS = options.NAMES


class GLRTrainer(keras_private.TrainerHooks):
    """Mixin that trains a Keras model by the GLR estimator.

    Every layer with trainable weights must be noisy (`NoisyDense`,
    `NoisyConv2D`); weightless layers may sit anywhere.

    Randomness has one home: the model's `training_noise` and
    `prediction_noise` generators (`keras.random.SeedGenerator(seed)`). Each
    training step draws one key from the first, each noisy prediction one
    from the second; every call of every noisy layer reads its own stream
    under that key (`keras_glr._src.streams`).
    """

    def __init__(self, *args, seed=None, **kwargs):
        misplaced = sorted(set(kwargs) & set(COMPILE_OPTIONS))
        if misplaced:
            options = ", ".join(f"{name}={kwargs[name]!r}" for name in misplaced)
            raise ValueError(
                f"{type(self).__name__} received the GLR option(s) {misplaced}, which belong "
                f"to `compile`: the same model may be trained with other options. Pass "
                f"them there: model.compile(optimizer, loss, {options})."
            )
        known = {"inputs", "outputs", "name", "trainable", "layers"}
        unknown = {k: v for k, v in kwargs.items() if k not in known}
        if unknown:
            raise ValueError(f"Unrecognized keyword arguments passed to {type(self).__name__}: {unknown}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(
                f"Invalid value received for argument `seed`. Expected None or an integer. Received: seed={seed!r}"
            )
        super().__init__(*args, **kwargs)
        self.seed = seed
        self.training_noise = keras.random.SeedGenerator(seed)
        self.prediction_noise = keras.random.SeedGenerator(seed)

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}

    def compile(
        self,
        optimizer="rmsprop",
        loss=None,
        loss_weights=None,
        metrics=None,
        **kwargs,
    ):
        """Configures the model for training, as `keras.Model.compile`.

        Args:
            optimizer: as in `keras.Model.compile` (same argument order).
            loss: any Keras loss or callable, differentiable or not, or
                "zero_one" for `keras_glr.losses.ZeroOneLoss`. In training,
                the reported loss is the mean over all copies.
            loss_weights: as in `keras.Model.compile`: with several
                outputs (a loss for each: a list in output order or a dict
                by output name), each copy's loss is the weighted sum of its
                outputs' losses (`keras_glr._src.outputs`).
            metrics: as in `keras.Model.compile`; in training they are
                computed on the first noisy copy of each example.
            **kwargs: the estimator's options, each a field of
                `keras_glr.options.EstimatorOptions` with its default and
                the objective the estimate is unbiased for (copies=100,
                baseline="loo", antithetic=False, estimator="glr",
                ste_slope=None, copies_per_chunk=None, injection="all",
                copies_per_layer=None, sampling="mc",
                perturbation_scale=0.03; the estimator guide's
                table lists them), and the other arguments of
                `keras.Model.compile`.
        """
        if loss is None:
            raise ValueError(
                "GLRModel.compile needs a `loss`: the GLR estimator multiplies "
                "each copy's loss by its noise score. Received: loss=None"
            )
        outputs.check(self, loss, loss_weights)  # before anything changes: a refused compile leaves the model as it was
        loss = _zero_one_named(loss)
        chosen = {name: kwargs.pop(name) for name in options.NAMES if name in kwargs}
        config = options.EstimatorOptions(**chosen).validate()
        estimator, copies_per_chunk = config.estimator, config.copies_per_chunk
        if estimator == "forward-gradient":  # before anything changes: a refused compile leaves the model as it was
            zero_one = any(isinstance(entry, glr_losses.ZeroOneLoss) for entry in outputs.entries(loss))
            forward_gradient.check_differentiable(self, zero_one=zero_one)
        self.glr_config = config
        every_loss, every_weight = outputs.for_keras(self, loss, loss_weights)
        super().compile(optimizer=optimizer, loss=every_loss, loss_weights=every_weight, metrics=metrics, **kwargs)
        self.glr_loss_weights = loss_weights
        self._estimator = self._estimator_for(estimator)
        keras_private.record_compile_options(self, dataclasses.asdict(self.glr_config))
        self._estimate_functions = {}
        self._built_from_spec = False
        if self.built and estimator == "glr":
            validation.check_layers(self)

        if self.built:
            validation.check_chunks(self, copies_per_chunk)

    def _estimator_for(self, name):
        """The compiled loss and options as the estimator called `name`.

        Several outputs: one per-example loss, the weighted sum of the
        outputs' losses (`keras_glr._src.outputs`).
        """
        config = self.glr_config.reset_for(name)  # another estimator than the compiled one keeps only what it uses
        if not outputs.is_several(self) and self.glr_loss_weights in (None, 1, 1.0):
            loss, values, surrogate = _loss_functions(self.loss)
            return estimators.make(name, loss, values, surrogate, config)
        names = outputs.names(self)
        weights = outputs.by_output(self.glr_loss_weights, names, "loss_weights", 1.0)
        each = [
            _loss_functions(entry) if entry is not None else (None, None, None)
            for entry in outputs.by_output(self.loss, names, "loss")
        ]
        loss, values = (outputs.weighted_sum([(f[i], w) for f, w in zip(each, weights)], names) for i in (0, 1))
        surrogate = None
        if any(f[2] is not None for f in each):
            surrogate = outputs.weighted_sum([(f[2] or f[0], w) for f, w in zip(each, weights)], names)
        return estimators.make(name, loss, values, surrogate, config)

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    # One training step: Algorithm 1 ---------------------------------------------

    def train_step(self, data):
        """One step of Algorithm 1.

        unpack (and check) -> [copies -> forward under the recorder ->
        per-copy losses -> centre -> local estimates] -> optimizer.apply ->
        metrics. The bracket is `estimator.one_pass` (`estimators.GLR.one_pass`),
        run by `_estimate` over the batch (or its chunks) with the step's
        noise key, plus the weight penalty's exact gradient.
        """
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        x, y = validation.check_batch(self, x, y)
        estimate = self._estimate(x, y, sample_weight, self._estimator, self.glr_config.copies)
        self.optimizer.apply(estimate.gradients, self.trainable_variables)
        return _logs_for_the_strategy(self._update_metrics(x, estimate))

    def _estimate(self, x, y, sample_weight, estimator, copies):
        """The step's gradient estimate, from one pass or chunks of the batch (a `copies.Pass`).

        The mean is over the B * K copies of the whole batch, whichever
        replica and chunk holds them: each replica adds its terms, the
        optimizer sums the replicas.
        """
        first_example, global_batch = copies_module.replica_share(x)
        copies = estimator.copies(copies)
        step = estimators.Step(copies, streams.next_key(self.training_noise), tf.cast(global_batch * copies, "float32"))
        chunk = self.glr_config.copies_per_chunk
        estimate = copies_module.in_chunks(
            functools.partial(estimator.one_pass, self, step=step),
            x,
            y,
            sample_weight,
            first_example,
            None if chunk is None else max(1, chunk // copies),
            self.trainable_variables,
            None if chunk is None else (self.outputs[0] if len(self.outputs) == 1 else self.output),
        )
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        gradients = estimators.penalty_gradients(estimate.gradients, self.trainable_variables, replicas)
        return dataclasses.replace(estimate, gradients=gradients, copies=copies)

    def _update_metrics(self, x, estimate):
        """The loss (mean over all copies), each output's loss and the compiled metrics (first copies): one place."""
        batch = tf.shape(tf.nest.flatten(x)[0])[0]
        mean = tf.math.divide_no_nan(estimate.loss, tf.cast(batch * estimate.copies, "float32"))
        keras_private.update_loss(self, mean, sample_weight=batch)
        if outputs.is_several(self):  # each output's loss, on the first copies as the metrics
            keras_private.track_output_losses(self, estimate.y, estimate.y_pred, estimate.sample_weight)
        return self.compute_metrics(x, estimate.y, estimate.y_pred, estimate.sample_weight)

    # Training, evaluation and prediction -------------------------------------

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        x, y = validation.check_batch(self, x, y)
        return _logs_for_the_strategy(super().test_step(keras.utils.pack_x_y_sample_weight(x, y, sample_weight)))

    def fit(self, x=None, y=None, *args, **kwargs):
        self._check_ready(x, y)
        validation.check_fit_arguments(x, y, kwargs)
        x = validation.at_the_edge(self, x, y)
        memory.check_step(self, validation.batch_size_of(x, kwargs))
        if isinstance(kwargs.get("validation_data"), tf.data.Dataset):
            kwargs["validation_data"] = validation.at_the_edge(self, kwargs["validation_data"], None)
        elif isinstance(kwargs.get("validation_data"), (tuple, list)):
            validation.check_arrays(self, *kwargs["validation_data"][:2])
        self._build_state_before_tracing(x, y, kwargs.get("sample_weight"))
        with validation.translate_errors():
            return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        x = validation.at_the_edge(self, x, y)
        self._build_state_before_tracing(x, y, kwargs.get("sample_weight"))
        with validation.translate_errors():
            return super().evaluate(x, y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        x = validation.at_the_edge(self, x, None)
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
        name = estimator or self.glr_config.estimator
        dataclasses.replace(self.glr_config.reset_for(name), copies=copies).validate()
        self._check_ready(x, y)
        if (copies, name) not in self._estimate_functions:
            chosen = self._estimator_for(name)
            self._estimate_functions[(copies, name)] = tf.function(
                lambda x, y, w: self._estimate(x, y, w, chosen, copies).gradients,
                autograph=False,
                reduce_retracing=True,
            )
        with validation.translate_errors():
            return list(self._estimate_functions[(copies, name)](x, y, sample_weight))

    def noisy_forward(self, x, passes, straight_through=False):
        """Outputs of `passes` noisy forward passes, shape (B, passes, ...).

        Every noisy call adds fresh noise in each pass, as at training time,
        from the model's `prediction_noise` (training noise never moves);
        the rest of the network runs in inference mode. `straight_through`
        ({"slope": ...}) gives step and sign units a surrogate gradient.
        """
        outputs, _ = copies_module.forward(
            self,
            x,
            passes,
            training=False,
            local=False,
            straight_through=straight_through,
            key=streams.next_key(self.prediction_noise),
            purpose=streams.PREDICTION,
        )
        return tf.reshape(outputs, tf.concat([[-1, passes], tf.shape(outputs)[1:]], axis=0))

    # Helpers ------------------------------------------------------------------

    def _build_state_before_tracing(self, x, y, sample_weight):
        """Creates the optimizer's and the metrics' variables from the data's shapes.

        A tf.function whose first trace creates variables is traced a second
        time; Keras creates these variables inside the first trace unless it
        runs under a distribution strategy. Building them first, from array
        shapes or a dataset's `element_spec` (no data is read), makes the
        first `fit` or `evaluate` trace its step once.
        """
        if not self.built or not keras_private.can_build_symbolically(self):
            return
        spec = validation.data_spec(x, y, sample_weight)
        if spec is None:
            return
        try:
            with self.distribute_strategy.scope():
                keras_private.symbolic_build(self, spec)
        except Exception:  # noqa: BLE001 - an optimisation only: `fit` reports the data's problem itself
            return
        self._built_from_spec = True

    def build_state_from_batch(self, iterator, data_batch, keras_default):
        """Builds the state before the first step (`keras_private.TrainerHooks`): as Keras, but from the first replica's
        shard of the first batch.

        Keras averages the replicas' shards, which fails when a batch does
        not divide evenly among the replicas; only the shapes matter here.
        Nothing is read when the state was already built from the data's
        spec: reading a batch would start an extra pass over a dataset that
        reshuffles on every pass, and the run would see other batches than
        it does without a strategy.
        """
        if getattr(self, "_built_from_spec", False):
            return
        if not keras_private.has_strategy(self) or iterator is None:
            return keras_default(iterator=iterator, data_batch=data_batch)
        for _, _, batches in iterator:
            first = next(batches)
            data_batch = tf.nest.map_structure(
                lambda t: (
                    self.distribute_strategy.experimental_local_results(t)[0]
                    if isinstance(t, tf.distribute.DistributedValues)
                    else t
                ),
                first,
            )
            break
        with self.distribute_strategy.scope():
            keras_private.symbolic_build(self, data_batch)

    def _check_ready(self, x, y):
        if not getattr(self, "compiled", False) or not hasattr(self, "glr_config"):
            raise RuntimeError(
                "The model must be compiled before training: call "
                "`model.compile(optimizer, loss, metrics, copies=...)` first."
            )
        validation.build_from_data(self, x)
        validation.check_arrays(self, x, y)
        if self.built and self.glr_config.estimator == "glr":
            validation.check_layers(self)
        if self.built and self.glr_config.estimator == "forward-gradient":
            forward_gradient.check_differentiable(self, zero_one=False)
        if self.built:
            validation.check_chunks(self, self.glr_config.copies_per_chunk)


@keras.saving.register_keras_serializable(package="keras_glr")
class GLRModel(keras_private.GraphHooks, GLRTrainer, keras.Model):
    """A functional Keras model trained by the GLR estimator.

    Build it like any functional model, `GLRModel(inputs, outputs)`, from
    noisy layers; compile with the GLR options; train with `fit`.
    `predict` and `evaluate` are deterministic unless a layer has
    `noisy_inference=True`.

    Args:
        *args: `inputs` and `outputs`, as for `keras.Model`.
        seed: int or None, seed of the model's noise generators
            (`training_noise`, `prediction_noise`). None follows
            `keras.utils.set_random_seed`.
        **kwargs: `inputs`, `outputs`, `name` and `trainable`, as for
            `keras.Model`.

    The GLR options (`copies`, `baseline`, ...) are `compile`'s, and passing
    them here is an error that says so.
    """

    pads_merges = True  # layer-wise fan-out pads this graph's merges (`fan_out.can_fan_out_by_layer`)

    def run_graph(self, operation_fn, run):
        """Runs the graph (`keras_private.GraphHooks`), padding merges under layer-wise fan-out."""
        record = recording.current()
        layerwise = None if record is None or not record.noise else record.layerwise
        if layerwise is None or not layerwise.pads(self):
            return run(operation_fn)
        return layerwise.padded_outputs(run(lambda op: layerwise.padded(op, operation_fn(op))))


@keras.saving.register_keras_serializable(package="keras_glr")
class GLRSequential(GLRTrainer, keras.Sequential):
    """A Sequential-style `GLRModel`: `GLRSequential([layer, ...], seed=None)`."""

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        seed = config.pop("seed", None)
        model = super().from_config(config, custom_objects)
        if seed is not None:
            model.seed = seed
            for generator in (model.training_noise, model.prediction_noise):
                generator.state.assign(keras.random.SeedGenerator(seed).state.value)
        return model


def _logs_for_the_strategy(logs):
    """The step's logs, shaped for the strategy that reduces them.

    Under MultiWorkerMirroredStrategy Keras reduces each log with
    `strategy.reduce("MEAN", value, axis=0)`, which fails on a scalar. The
    metrics' results are the same on every replica (their variables are
    synchronised), so each gets an axis of length one, which that mean removes.
    """
    strategy = tf.distribute.get_strategy()
    multi_worker = isinstance(
        strategy, tf.distribute.MultiWorkerMirroredStrategy
    ) and keras_private.in_multi_worker_mode(strategy)
    if not multi_worker:
        return logs
    return {name: tf.reshape(value, [1]) if value.shape.rank == 0 else value for name, value in logs.items()}


def _zero_one_named(loss):
    """`ZeroOneLoss()` for the 0-1 loss's names ("zero_one", "0-1", ...), also in a list or dict; others as they are."""
    if isinstance(loss, dict):
        return {name: _zero_one_named(entry) for name, entry in loss.items()}
    if isinstance(loss, (list, tuple)):
        return [_zero_one_named(entry) for entry in loss]
    if isinstance(loss, str) and loss.lower() in _ZERO_ONE_NAMES:
        return glr_losses.ZeroOneLoss()
    return loss


def _loss_functions(loss):
    """(per-example loss, per-example values computing no gradient, differentiable surrogate or None) of `loss`."""
    values_only = glr_losses.forward_only(loss)
    surrogate = glr_losses.cross_entropy_from_logits if isinstance(loss, glr_losses.ZeroOneLoss) else None
    return glr_losses.per_example(loss), glr_losses.per_example(values_only or loss), surrogate
