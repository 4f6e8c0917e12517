"""Datasets as `tf.data` pipelines: mnist5k offline, TFDS, tiny-imagenet."""

from keras_glr.data.errors import DataUnavailableError
from keras_glr.data.pipeline import DatasetInfo
from keras_glr.data.pipeline import Splits
from keras_glr.data.pipeline import load
from keras_glr.data.pipeline import test_arrays

__all__ = ["DataUnavailableError", "DatasetInfo", "Splits", "load", "test_arrays"]
