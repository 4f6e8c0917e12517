"""TFDS image-classification datasets (mnist, fashion_mnist, cifar10, ...).

Reads a prepared TFDS data directory and never downloads: with no network a
missing dataset is a `DataUnavailableError` that says how to prepare it.
"""

from keras_glr.data.errors import DataUnavailableError


def _how_to_prepare(name, data_dir):
    where = f", data_dir={data_dir!r}" if data_dir else ""
    return (
        f'Prepare it once on a machine with internet: python -c "import '
        f"tensorflow_datasets as tfds; tfds.load('{name}'{where})\", then "
        "copy the data directory here and pass it with --data-dir (data_dir=...)."
    )


def load_datasets(name, data_dir=None, validation_fraction=0.1):
    """Returns (train, validation, test, class_names, sizes) of (image, label) pairs.

    Uses the dataset's own validation split when it has one; otherwise the
    last `validation_fraction` of train. Images are left as stored (uint8).
    """
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as error:  # tfds raises several types for unknown names
        raise DataUnavailableError(
            f"tensorflow-datasets has no dataset named {name!r} ({type(error).__name__}). "
            "Check the name (e.g. 'mnist', 'fashion_mnist', 'cifar10')."
        ) from None
    if not builder.is_prepared():
        raise DataUnavailableError(
            f"The TFDS dataset {name!r} is not prepared in "
            f"{data_dir or 'the default TFDS data directory'} and this program "
            "does not download. " + _how_to_prepare(name, data_dir)
        )
    info = builder.info
    splits = info.splits
    if "label" not in info.features or "image" not in info.features:
        raise DataUnavailableError(
            f"{name!r} is not an image-classification dataset (it needs 'image' and 'label' features)."
        )
    if "train" not in splits:
        raise DataUnavailableError(f"{name!r} has no 'train' split; found {sorted(splits)}.")
    percent = int(round(100 * (1 - validation_fraction)))
    if "validation" in splits:
        train_split, validation_split = "train", "validation"
    elif validation_fraction > 0:
        train_split, validation_split = f"train[:{percent}%]", f"train[{percent}%:]"
    else:
        train_split, validation_split = "train", None
    test_split = "test" if "test" in splits else validation_split
    names = [s for s in (train_split, validation_split, test_split) if s is not None]
    loaded = builder.as_dataset(split=names, shuffle_files=False)
    by_name = {n: d.map(lambda e: (e["image"], e["label"])) for n, d in zip(names, loaded)}
    sizes = {n: splits[n].num_examples for n in names}
    class_names = list(info.features["label"].names)
    return (
        by_name[train_split],
        by_name.get(validation_split),
        by_name[test_split],
        class_names,
        (sizes[train_split], sizes.get(validation_split, 0), sizes[test_split]),
    )
