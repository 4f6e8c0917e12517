"""Callbacks for GLR training: `StopOnNaN` stops at the first non-finite loss with a clear error.

Keras's own `TerminateOnNaN` stops quietly and leaves the NaN weights of the
last step in the model; `StopOnNaN` raises `TrainingDivergedError` naming the
epoch, the step and the last finite loss, before the epoch's end (so a
checkpoint written at the end of an epoch never holds NaN weights).
`glr-train` (`keras_glr._src.runs.train`) always adds it; a `fit` of your own
adds it when you pass it, as with any Keras callback.
"""

import math

import keras


class TrainingDivergedError(RuntimeError):
    """The training loss became NaN or infinite."""


class StopOnNaN(keras.callbacks.Callback):
    """Raises `TrainingDivergedError` at the first step whose training loss is not finite."""

    def __init__(self):
        super().__init__()
        self.epoch, self.last_finite = 0, None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        loss = float(loss)
        if math.isfinite(loss):
            self.last_finite = (self.epoch + 1, batch + 1, loss)
            return
        last = (
            "no step had a finite loss"
            if self.last_finite is None
            else "the last finite loss was {2:.4g}, at epoch {0}, step {1}".format(*self.last_finite)
        )
        raise TrainingDivergedError(
            f"Training stopped at epoch {self.epoch + 1}, step {batch + 1}: the loss became {loss} ({last}). "
            "Lower the learning rate, or check the data and the loss for values that overflow."
        )
