"""glr-train: train a GLR network and leave a servable model in saved_models/.

With no arguments it trains the paper's 196-20-10 threshold network by GLR
with cross-entropy on the 5000 offline MNIST digits (14x14).
"""

import argparse
import dataclasses
import os
import sys

from . import common

PROGRAM = "glr-train"


def _image_size(text):
    size = int(text)
    return size or None


def _checked(parse):
    """`parse` with its ValueError shown by argparse as the message it carries."""

    def checked(text):
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    checked.__name__ = parse.__name__
    return checked


def build_parser():
    """The options: one per `RunConfig` field, in its group, with its default."""
    run_config = common.run_config()
    p = argparse.ArgumentParser(prog=PROGRAM, description=__doc__, formatter_class=common.HelpFormatter)
    groups = {}
    for field in dataclasses.fields(run_config.RunConfig):
        meta = field.metadata
        group = groups.get(meta["group"]) or groups.setdefault(meta["group"], p.add_argument_group(meta["group"]))
        flags = [common.flag(field.name)] + ([meta["alias"]] if "alias" in meta else [])
        per_arch = {arch: d[field.name] for arch, d in run_config.ARCH_DEFAULTS.items() if field.name in d}
        help = meta["help"]
        if per_arch:  # left unset here; `config_from_args` fills in the architecture's default

            def shown(v):
                return (
                    ("on" if v else "off")
                    if field.type is bool
                    else ",".join(map(str, v))
                    if isinstance(v, tuple)
                    else v
                )

            help += (
                f" (default: {shown(field.default)}; "
                + "; ".join(f"with --arch {a}: {shown(v)}" for a, v in per_arch.items())
                + ")"
            )
        if field.type is bool:
            group.add_argument(
                *flags, action=argparse.BooleanOptionalAction, default=None if per_arch else False, help=help
            )
            continue
        kind = (
            meta.get("parse")
            or {"image_size": _image_size}.get(field.name)
            or (field.type if field.type in (int, float) else str)
        )
        kind = _checked(kind) if "parse" in meta else kind
        default = ",".join(map(str, field.default)) if isinstance(field.default, tuple) else field.default
        group.add_argument(
            *flags,
            type=kind,
            default=None if per_arch else default,
            choices=meta.get("choices"),
            help=help,
            metavar=None if "choices" in meta else meta.get("metavar", field.name.upper()),
        )
    several = p.add_argument_group("several devices or machines")
    several.add_argument(
        "--strategy",
        choices=common.library_module("_src.distribution").STRATEGIES,
        default="none",
        help="mirrored: every local device; multi-worker: the workers in TF_CONFIG, each running this command "
        "(--batch-size is the global batch; the chief writes the run)",
    )
    out = groups["output"]
    out.add_argument("--out", default="saved_models", help="folder that holds run directories")
    out.add_argument(
        "--resume", action="store_true", help="continue the run with this name (more --epochs continue a finished one)"
    )
    out.add_argument("--overwrite", action="store_true", help="replace an existing run with this name")
    out.add_argument(
        "--twin-of",
        default=None,
        metavar="RUN_DIR",
        help="train the BP twin of a GLR run: its configuration with the estimator bp-noise "
        "(bp-ste for step/sign units); other network and training options are ignored",
    )
    out.add_argument("--quiet", action="store_true", help="one line per epoch instead of a progress bar")
    out.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up logs")
    return p


def config_from_args(args):
    """The `RunConfig` the parsed options describe; options left unset take the architecture's defaults."""
    RunConfig = common.run_config().RunConfig
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(RunConfig) if getattr(args, f.name) is not None}
    return RunConfig.for_arch(**given)


def twin_from_run(run_dir, run_name=None):
    """The twin configuration of the GLR run in `run_dir`."""
    from keras_glr import runs

    if not os.path.exists(os.path.join(run_dir, "config.json")):
        raise FileNotFoundError(f"{run_dir} holds no config.json; --twin-of expects a glr-train run directory.")
    twin = runs.twin_config(runs.read_config(run_dir))
    return dataclasses.replace(twin, run_name=run_name) if run_name else twin


def _interrupted():
    """The line Ctrl-C prints: what the run in progress keeps (nothing is half-written)."""
    runs = sys.modules.get("keras_glr.runs")
    return "interrupted. " + (runs.interrupted() if runs else "Nothing was written.")


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.resume and args.overwrite:
        return common.fail(PROGRAM, "--resume and --overwrite contradict each other; pass one of them.")
    common.start(PROGRAM, args.verbose, _interrupted)
    names = [f.name for f in dataclasses.fields(common.run_config().RunConfig)]
    try:
        from keras_glr import runs

        strategy = runs.make_strategy(args.strategy)
        config, record = config_from_args(args), {}
        if args.twin_of:
            config, record = twin_from_run(args.twin_of, args.run_name), {"twin_of": os.path.abspath(args.twin_of)}
        result = runs.train(
            config,
            args.out,
            args.resume,
            args.overwrite,
            verbose=2 if args.quiet else "auto",
            record=record,
            strategy=strategy,
        )
    except common.USER_ERRORS as error:
        return common.fail(PROGRAM, common.in_flags(str(error), names))
    print(f"\nRun directory: {result.run_dir}")
    for key in ("test_accuracy", "test_loss", "val_accuracy"):
        if key in result.metrics:
            print(f"  {key}: {result.metrics[key]:.4f}")
    shape = ", ".join(["None"] + [str(d) for d in result.input_shape or ()])
    print(
        f"  SavedModel: {result.saved_model} (signatures serving_default, serve_noisy: inputs float32 ({shape}); "
        "serve the folder above it with TF Serving)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
