"""glr-train: train a GLR network and leave a servable model in saved_models/.

With no arguments it trains the paper's 196-20-10 threshold network by GLR
with cross-entropy on the 5000 offline MNIST digits (14x14).
"""

import argparse
import os
import sys

from apps import common


def build_parser():
    from keras_glr import runs

    d = runs.RunConfig()
    p = argparse.ArgumentParser(prog="glr-train", description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    data = p.add_argument_group("data")
    data.add_argument("--dataset", default=d.dataset, help="mnist5k (offline), tiny_imagenet, or a TFDS name such as mnist, fashion_mnist")
    data.add_argument("--data-dir", default=None, help="prepared TFDS data directory, or the tiny-imagenet-200 folder")
    data.add_argument("--image-size", type=int, default=d.image_size, help="resize images to N x N (0 keeps their size)")
    data.add_argument("--validation-fraction", type=float, default=d.validation_fraction)
    net = p.add_argument_group("network")
    net.add_argument("--arch", choices=runs.ARCHITECTURES, default=d.arch)
    net.add_argument("--hidden", default="20", help="hidden layer widths of the MLP, e.g. 20 or 50,50")
    net.add_argument("--activation", default=d.activation, help="step (threshold), sigmoid, abs, sign, relu, ...")
    net.add_argument("--noise", choices=runs.NOISES, default=d.noise)
    net.add_argument("--sigma", type=float, default=d.sigma, help="standard deviation of the neuronal noise")
    est = p.add_argument_group("estimator")
    est.add_argument("--loss", choices=runs.LOSSES, default=d.loss)
    est.add_argument("--estimator", choices=("glr", "bp", "bp-noise", "bp-ste"), default=d.estimator,
                     help="bp-ste: backprop with straight-through step/sign units, the fair control of a step network")
    est.add_argument("--ste-slope", type=float, default=None, help="bp-ste surrogate: derivative of sigmoid(slope x) instead of the identity")
    est.add_argument("--copies", type=int, default=d.copies, help="K, noise copies per example")
    est.add_argument("--baseline", choices=("loo", "none"), default=d.baseline)
    est.add_argument("--antithetic", action="store_true", help="noise in pairs (r, -r)")
    opt = p.add_argument_group("optimisation")
    opt.add_argument("--optimizer", choices=runs.OPTIMIZERS, default=d.optimizer)
    opt.add_argument("--learning-rate", "--lr", type=float, default=d.learning_rate)
    opt.add_argument("--schedule", choices=runs.SCHEDULES, default=d.schedule)
    opt.add_argument("--epochs", type=int, default=d.epochs)
    opt.add_argument("--batch-size", type=int, default=d.batch_size)
    opt.add_argument("--seed", type=int, default=d.seed)
    out = p.add_argument_group("output")
    out.add_argument("--run-name", default=None, help="folder name under --out (made from the options if omitted)")
    out.add_argument("--out", default="saved_models", help="folder that holds run directories")
    out.add_argument("--noisy-passes", type=int, default=d.noisy_passes, help="M, noisy passes averaged by the serve_noisy signature")
    out.add_argument("--resume", action="store_true", help="continue an interrupted run with this name")
    out.add_argument("--overwrite", action="store_true", help="replace an existing run with this name")
    out.add_argument("--quiet", action="store_true", help="one line per epoch instead of a progress bar")
    out.add_argument("--twin-of", default=None, metavar="RUN_DIR",
                     help="train the BP twin of a GLR run: its configuration with the estimator bp-noise "
                          "(bp-ste for step/sign units); other network and training options are ignored")
    return p


def config_from_args(args):
    from keras_glr import architectures
    from keras_glr import runs

    return runs.RunConfig(
        dataset=args.dataset,
        data_dir=args.data_dir,
        image_size=args.image_size or None,
        arch=args.arch,
        hidden=architectures.parse_hidden(args.hidden),
        activation=args.activation,
        loss=args.loss,
        noise=args.noise,
        sigma=args.sigma,
        copies=args.copies,
        baseline=args.baseline,
        antithetic=args.antithetic,
        estimator=args.estimator,
        ste_slope=args.ste_slope,
        optimizer=args.optimizer,
        learning_rate=args.learning_rate,
        schedule=args.schedule,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        validation_fraction=args.validation_fraction,
        noisy_passes=args.noisy_passes,
        run_name=args.run_name,
    )


def twin_from_run(run_dir, run_name=None):
    """The twin configuration of the GLR run in `run_dir`."""
    import dataclasses

    from keras_glr import runs
    from keras_glr import twins

    path = os.path.join(run_dir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{run_dir} holds no config.json; --twin-of expects a glr-train run directory.")
    twin = twins.twin_config(runs.RunConfig.from_json(runs.read_json(path)))
    return dataclasses.replace(twin, run_name=run_name) if run_name else twin


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.resume and args.overwrite:
        return common.fail("glr-train", "--resume and --overwrite contradict each other; pass one of them.")
    common.quiet_tensorflow()
    from keras_glr import runs

    try:
        config, record = config_from_args(args), {}
        if args.twin_of:
            config, record = twin_from_run(args.twin_of, args.run_name), {"twin_of": os.path.abspath(args.twin_of)}
        result = runs.train(config, args.out, args.resume, args.overwrite, verbose=2 if args.quiet else "auto", record=record)
    except KeyboardInterrupt:
        return common.fail("glr-train", "interrupted. The last finished epoch is saved; continue with the same command and --resume.", 130)
    except common.USER_ERRORS as error:
        return common.fail("glr-train", str(error))
    print(f"\nRun directory: {result.run_dir}")
    for key in ("test_accuracy", "test_loss", "val_accuracy"):
        if key in result.metrics:
            print(f"  {key}: {result.metrics[key]:.4f}")
    print(f"  SavedModel: {os.path.join(result.run_dir, 'saved_model')} (signatures serving_default, serve_noisy)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
