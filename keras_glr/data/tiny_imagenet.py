"""`tiny_imagenet`: a local copy of the tiny-imagenet-200 archive.

Layout (as in the official archive):
    ROOT/wnids.txt                       (optional) one class id per line
    ROOT/train/<wnid>/images/*.JPEG      labelled training images
    ROOT/val/val_annotations.txt         "<file>\t<wnid>\t..." per line
    ROOT/val/images/*.JPEG
The labelled `val` set serves as the test split (the official test set has no
labels).
"""

import os

import tensorflow as tf

from keras_glr.data.errors import DataUnavailableError

HOW_TO_GET = (
    "Download http://cs231n.stanford.edu/tiny-imagenet-200.zip on a machine "
    "with internet, unzip it, and pass the folder with --data-dir "
    "(data_dir=...): it must contain train/ and val/."
)


def find_root(data_dir):
    """Returns the tiny-imagenet-200 folder inside or at `data_dir`."""
    if data_dir is None:
        raise DataUnavailableError("tiny_imagenet needs a local copy. " + HOW_TO_GET)
    for candidate in (data_dir, os.path.join(data_dir, "tiny-imagenet-200")):
        if os.path.isdir(os.path.join(candidate, "train")) and os.path.isdir(os.path.join(candidate, "val")):
            return candidate
    raise DataUnavailableError(f"No tiny-imagenet-200 folder found at {data_dir!r}. " + HOW_TO_GET)


def _files_and_labels(root):
    train_dir = os.path.join(root, "train")
    wnids_file = os.path.join(root, "wnids.txt")
    if os.path.exists(wnids_file):
        with open(wnids_file) as f:
            wnids = [line.strip() for line in f if line.strip()]
    else:
        wnids = sorted(d for d in os.listdir(train_dir) if os.path.isdir(os.path.join(train_dir, d)))
    index = {wnid: i for i, wnid in enumerate(wnids)}
    train = []
    for wnid in wnids:
        folder = os.path.join(train_dir, wnid, "images")
        if os.path.isdir(folder):
            train += [
                (os.path.join(folder, f), index[wnid])
                for f in sorted(os.listdir(folder))
                if f.lower().endswith((".jpeg", ".jpg", ".png"))
            ]
    annotations = os.path.join(root, "val", "val_annotations.txt")
    if not os.path.exists(annotations):
        raise DataUnavailableError(f"{annotations} is missing. " + HOW_TO_GET)
    test = []
    with open(annotations) as f:
        for line in f:
            parts = line.strip().split("\t")
            if len(parts) >= 2 and parts[1] in index:
                test.append((os.path.join(root, "val", "images", parts[0]), index[parts[1]]))
    if not train or not test:
        raise DataUnavailableError(f"No images found under {root!r}. " + HOW_TO_GET)
    return wnids, train, test


def _decode(path):
    return tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)


def load_datasets(data_dir):
    """Returns (train, test, class_names): unbatched (image, label) datasets.

    Images are float32 in [0, 1], shape (64, 64, 3) in the official archive;
    every image must have the size of the first training image.
    """
    wnids, train, test = _files_and_labels(find_root(data_dir))
    shape = _decode(train[0][0]).shape  # (64, 64, 3) in the official archive

    def decode(path, label):
        image = tf.ensure_shape(_decode(path), shape)
        return tf.image.convert_image_dtype(image, tf.float32), label

    def dataset(pairs):
        paths, labels = zip(*pairs)
        return tf.data.Dataset.from_tensor_slices((list(paths), list(labels))).map(decode)

    return dataset(train), dataset(test), wnids, len(train), len(test)
