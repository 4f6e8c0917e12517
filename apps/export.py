"""glr-export: re-export a trained model as a TF SavedModel and print its signatures."""

import argparse
import os
import shutil
import sys

from apps import common


def build_parser():
    p = argparse.ArgumentParser(prog="glr-export", description=__doc__)
    p.add_argument("model", help="a run directory (saved_models/<run>) or a .keras file")
    p.add_argument("--out", default=None, help="SavedModel folder (default: <run>/saved_model, or next to the .keras file)")
    p.add_argument("--noisy-passes", type=int, default=32, help="M, noisy passes averaged by serve_noisy")
    p.add_argument("--overwrite", action="store_true", help="replace an existing SavedModel at --out")
    return p


def resolve_model_path(path):
    """Returns the .keras file for a run directory or a .keras path."""
    if os.path.isdir(path):
        candidate = os.path.join(path, "model.keras")
        if not os.path.exists(candidate):
            raise FileNotFoundError(f"{path} holds no model.keras; is it a finished glr-train run directory?")
        return candidate
    if not os.path.exists(path):
        raise FileNotFoundError(f"No such run directory or .keras file: {path}")
    if not path.endswith(".keras"):
        raise ValueError(f"Expected a run directory or a .keras file; received {path}.")
    return path


def main(argv=None):
    args = build_parser().parse_args(argv)
    common.quiet_tensorflow()
    try:
        model_path = resolve_model_path(args.model)
        out = args.out or (os.path.join(args.model, "saved_model") if os.path.isdir(args.model) else model_path[: -len(".keras")] + "_saved_model")
        if os.path.exists(out) and os.listdir(out) if os.path.isdir(out) else os.path.exists(out):
            if not args.overwrite:
                raise ValueError(f"{out} already exists. Pass --overwrite to replace it, or choose another --out.")
            shutil.rmtree(out) if os.path.isdir(out) else os.remove(out)
        import keras

        import keras_glr  # noqa: F401  (registers the custom objects)
        from keras_glr import export

        model = keras.saving.load_model(model_path)
        export.export_saved_model(model, out, args.noisy_passes)
        signatures = export.describe_signatures(out)
    except common.USER_ERRORS as error:
        return common.fail("glr-export", str(error))
    print(f"SavedModel written to {out}")
    for name, (inputs, outputs) in sorted(signatures.items()):
        print(f"  {name}: inputs {inputs} -> outputs {outputs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
