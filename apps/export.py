"""glr-export: export a trained model as a TF SavedModel laid out for TF Serving.

Writes OUT/VERSION/saved_model.pb (TF Serving serves the highest VERSION under
OUT) and prints the signatures: serving_default and serve_noisy.
"""

import argparse
import os
import sys

from . import common

PROGRAM = "glr-export"


def _positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, received {text}")
    return value


def build_parser():
    p = argparse.ArgumentParser(prog=PROGRAM, description=__doc__, formatter_class=common.HelpFormatter)
    p.add_argument("model", help="a run directory (saved_models/<run>) or a .keras file")
    p.add_argument(
        "--out",
        default=None,
        help="base folder of the versions (if omitted: <run>/saved_model, or <name>_saved_model next to a .keras file)",
    )
    p.add_argument(
        "--version",
        type=_positive,
        default=None,
        help="version folder to write (if omitted: one more than the highest under --out, or 1)",
    )
    p.add_argument("--noisy-passes", type=_positive, default=32, help="M, noisy passes averaged by serve_noisy")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --version")
    p.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up logs")
    return p


def default_base(model):
    """Where versions go when --out is not given."""
    if os.path.isdir(model):
        return os.path.join(model, "saved_model")
    return model[: -len(".keras")] + "_saved_model"


def main(argv=None):
    args = build_parser().parse_args(argv)
    common.start(PROGRAM, args.verbose, "interrupted; no version was added (a half-written one is never in place).")
    try:
        from keras_glr import runs

        out = runs.export_version(
            args.model, args.out or default_base(args.model), args.version, args.noisy_passes, args.overwrite
        )
        signatures = runs.describe_signatures(out)
    except common.USER_ERRORS as error:
        return common.fail(PROGRAM, str(error))
    base = os.path.dirname(out)
    print(f"SavedModel written to {out}")
    for name, (inputs, outputs) in sorted(signatures.items()):
        print(f"  {name}: inputs {inputs} -> outputs {outputs}")
    print(f"Serve it with TF Serving: --model_base_path={os.path.abspath(base)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
