"""Datasets from real files made here: mnist5k, a TFDS directory, tiny-imagenet."""

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_glr import data
from keras_glr.data import mnist5k


def _rows(x):
    return {row.tobytes() for row in x.reshape(len(x), -1)}


def test_mnist5k_split_is_disjoint_and_stable_under_a_seed():
    (x_train, y_train), (x_test, y_test) = mnist5k.load_arrays(seed=3)
    assert len(x_train) == 3000 and len(x_test) == 2000
    assert x_train.dtype == np.float32 and x_train.max() <= 1.0 and x_train.min() >= 0.0
    assert not _rows(x_train) & _rows(x_test)
    (again, _), _ = mnist5k.load_arrays(seed=3)
    np.testing.assert_array_equal(again, x_train)
    (other, _), _ = mnist5k.load_arrays(seed=4)
    assert not np.array_equal(other, x_train)


def test_mnist5k_loads_do_not_share_memory():
    (x_train, y_train), _ = mnist5k.load_arrays(seed=3)
    original = x_train.copy()
    x_train[:] = 0.0
    y_train[:] = -1
    (again, labels), _ = mnist5k.load_arrays(seed=3)  # parsed once per process, fresh arrays each call
    np.testing.assert_array_equal(again, original)
    assert labels.min() >= 0


def test_load_mnist5k_resized_and_flattened():
    splits = data.load("mnist5k", batch_size=50, image_size=14, flatten=True, seed=1)
    other_seed = data.load("mnist5k", batch_size=2000, image_size=14, flatten=True, seed=2)
    np.testing.assert_array_equal(next(iter(splits.test.unbatch().batch(2000)))[1], next(iter(other_seed.test))[1])
    assert splits.info.input_shape == (196,) and splits.info.num_classes == 10
    assert splits.info.sizes == {"train": 2700, "validation": 300, "test": 2000}
    x, y = next(iter(splits.train))
    assert x.shape == (50, 196) and y.dtype.name == "int32"
    seen = [_rows(np.concatenate([b[0].numpy() for b in d])) for d in (splits.train, splits.validation, splits.test)]
    assert not seen[0] & seen[1] and not seen[0] & seen[2] and not seen[1] & seen[2]


def test_resumable_stream_starts_at_any_epoch():
    splits = data.load("mnist5k", batch_size=500, image_size=7, flatten=True)
    steps = splits.steps_per_epoch
    full = [y.numpy() for _, y in splits.train_epochs(0).take(3 * steps)]
    resumed = [y.numpy() for _, y in splits.train_epochs(2).take(steps)]
    for a, b in zip(full[2 * steps :], resumed):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(full[0], full[steps])  # reshuffled each epoch


def _write_tiny_imagenet(root, classes=("n01", "n02", "n03"), per_class=4, size=16):
    rng = np.random.default_rng(0)
    with open(os.path.join(root, "wnids.txt"), "w") as f:
        f.write("\n".join(classes))
    for label, wnid in enumerate(classes):
        folder = os.path.join(root, "train", wnid, "images")
        os.makedirs(folder)
        for i in range(per_class):
            pixels = np.full((size, size, 3), 60 * label, np.uint8) + rng.integers(
                0, 20, (size, size, 3), dtype=np.uint8
            )
            Image.fromarray(pixels).save(os.path.join(folder, f"{wnid}_{i}.JPEG"))
    os.makedirs(os.path.join(root, "val", "images"))
    lines = []
    for i, wnid in enumerate(classes * 2):
        name = f"val_{i}.JPEG"
        Image.fromarray(np.zeros((size, size, 3), np.uint8)).save(os.path.join(root, "val", "images", name))
        lines.append(f"{name}\t{wnid}\t0\t0\t{size}\t{size}")
    with open(os.path.join(root, "val", "val_annotations.txt"), "w") as f:
        f.write("\n".join(lines))


def test_tiny_imagenet_from_a_local_tree(tmp_path):
    root = tmp_path / "tiny-imagenet-200"
    root.mkdir()
    _write_tiny_imagenet(str(root))
    splits = data.load("tiny_imagenet", data_dir=str(tmp_path), batch_size=4, validation_fraction=0.25)
    assert splits.info.num_classes == 3 and splits.info.class_names == ["n01", "n02", "n03"]
    assert splits.info.sizes == {"train": 9, "validation": 3, "test": 6}
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in splits.train.unbatch()])
    assert np.stack(images).shape == (9, 16, 16, 3) and set(labels) <= {0, 1, 2}
    test_labels = sorted(int(y) for _, y in splits.test.unbatch())
    assert test_labels == [0, 0, 1, 1, 2, 2]
    resized = data.load("tiny_imagenet", data_dir=str(root), image_size=8, flatten=True)
    assert resized.info.input_shape == (192,)


def test_tiny_imagenet_missing_says_how_to_get_it(tmp_path):
    with pytest.raises(data.DataUnavailableError, match="tiny-imagenet-200.zip"):
        data.load("tiny_imagenet", data_dir=str(tmp_path))
    with pytest.raises(data.DataUnavailableError, match="needs a local copy"):
        data.load("tiny_imagenet")


def test_tfds_directory_prepared_offline_from_real_digits(tmp_path):
    import tensorflow_datasets as tfds

    (x_train, y_train), (x_test, y_test) = mnist5k.load_arrays()
    to_uint8 = lambda x: (x * 255).round().astype(np.uint8)  # noqa: E731
    features = tfds.features.FeaturesDict(
        {"image": tfds.features.Image(shape=(28, 28, 1)), "label": tfds.features.ClassLabel(num_classes=10)}
    )
    tfds.dataset_builders.store_as_tfds_dataset(
        name="digits_offline",
        version="1.0.0",
        features=features,
        split_datasets={
            "train": tf.data.Dataset.from_tensor_slices({"image": to_uint8(x_train[:40]), "label": y_train[:40]}),
            "test": tf.data.Dataset.from_tensor_slices({"image": to_uint8(x_test[:20]), "label": y_test[:20]}),
        },
        data_dir=str(tmp_path),
    )
    splits = data.load("digits_offline", data_dir=str(tmp_path), batch_size=8, image_size=14, flatten=True)
    assert splits.info.sizes == {"train": 36, "validation": 4, "test": 20}
    assert splits.info.input_shape == (196,)
    x, _ = next(iter(splits.test.unbatch()))
    assert 0.0 <= float(np.min(x)) and float(np.max(x)) <= 1.0


def test_unknown_and_unprepared_tfds_names(tmp_path):
    with pytest.raises(data.DataUnavailableError, match="no dataset named 'no_such_data'"):
        data.load("no_such_data", data_dir=str(tmp_path))
    with pytest.raises(data.DataUnavailableError, match="not prepared.*does not download.*tfds.load\\('mnist'"):
        data.load("mnist", data_dir=str(tmp_path))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"batch_size": 0}, "batch_size=0"),
        ({"image_size": -3}, "image_size=-3"),
        ({"validation_fraction": 1.0}, "validation_fraction=1.0"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        data.load("mnist5k", **kwargs)
