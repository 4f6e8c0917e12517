"""keras_glr: train Keras networks without backpropagation, by the GLR method.

Noise enters every neuron's pre-activation; each weight's gradient is
estimated from the loss value times the noise score, averaged over K noise
copies. Activations and losses may be discontinuous.

    model = keras_glr.GLRSequential([keras.Input((196,)),
                                     keras_glr.layers.NoisyDense(20, "step"),
                                     keras_glr.layers.NoisyDense(10)])
    model.compile("adam", "sparse_categorical_crossentropy", copies=100)
    model.fit(x, y)

The public API is `__all__` here and in each subpackage; everything under
`keras_glr._src` is internal.
"""

import importlib as _importlib
import warnings as _warnings

from keras_glr import activations
from keras_glr import architectures
from keras_glr import data
from keras_glr import layers
from keras_glr import losses
from keras_glr import noise
from keras_glr import options
from keras_glr import reproduction
from keras_glr import robustness
from keras_glr import runs
from keras_glr._src.callbacks import StopOnNaN
from keras_glr._src.callbacks import TrainingDivergedError
from keras_glr._src.conversion import convert
from keras_glr._src.model import GLRModel
from keras_glr._src.model import GLRSequential
from keras_glr._src.version import __version__  # noqa: F401
from keras_glr.options import EstimatorOptions

__all__ = [
    "EstimatorOptions",
    "GLRModel",
    "GLRSequential",
    "StopOnNaN",
    "TrainingDivergedError",
    "activations",
    "architectures",
    "convert",
    "data",
    "layers",
    "losses",
    "noise",
    "options",
    "reproduction",
    "robustness",
    "runs",
]

#: Modules that were public before the internals moved to `keras_glr._src`:
#: `keras_glr.copies` still works, with a DeprecationWarning.
_MOVED = (
    "atomic_files",
    "backprop",
    "callbacks",
    "checkpoints",
    "conversion",
    "copies",
    "distribution",
    "estimators",
    "export",
    "forward_gradient",
    "memory",
    "model",
    "perturbation",
    "plots",
    "recording",
    "recurrence",
    "run_config",
    "run_lock",
    "seed_statistics",
    "streams",
    "twins",
    "validation",
)


def __getattr__(name):
    if name in _MOVED:
        _warnings.warn(
            f"keras_glr.{name} is internal and has moved to keras_glr._src.{name}; use the public names of "
            "keras_glr (its __all__) instead.",
            DeprecationWarning,
            stacklevel=2,
        )
        return _importlib.import_module(f"keras_glr._src.{name}")
    raise AttributeError(f"module 'keras_glr' has no attribute {name!r}")
