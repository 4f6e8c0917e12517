"""keras_glr: train Keras networks without backpropagation, by the GLR method.

Noise enters every neuron's pre-activation; each weight's gradient is
estimated from the loss value times the noise score, averaged over K noise
copies. Activations and losses may be discontinuous.
"""

from keras_glr import activations
from keras_glr import backprop
from keras_glr import callbacks
from keras_glr import copies
from keras_glr import estimators
from keras_glr import layers
from keras_glr import losses
from keras_glr import noise
from keras_glr import recording
from keras_glr import streams
from keras_glr.callbacks import StopOnNaN
from keras_glr.conversion import convert
from keras_glr.model import GLRModel
from keras_glr.model import GLRSequential

__version__ = "0.1.0"

__all__ = [
    "GLRModel",
    "GLRSequential",
    "StopOnNaN",
    "activations",
    "backprop",
    "callbacks",
    "convert",
    "copies",
    "estimators",
    "layers",
    "losses",
    "noise",
    "recording",
    "streams",
]
