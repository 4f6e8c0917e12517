"""glr-reproduce: the paper's Tables I and II from one command, with the controls it lacks.

Trains the attack surrogate and every row of a suite and each GLR row's BP
twin, for several seeds; crafts the transfer attacks once; measures every
model on the same inputs; writes OUT/REPORT.md, plus CSV, JSON and plots.
Suites: mlp (the paper's 196-20-10 network: BP sigmoid; GLR sigmoid,
threshold and |x|; the 0-1 loss; Laplace noise; the paper's numbers beside
ours) and cnn (the small CNN: BP ReLU, GLR ReLU, and GLR step units
fine-tuned from the BP network; the MNIST-C corruptions too). Re-running
skips what is finished and resumes the rest.
"""

import argparse
import sys

from . import common


def build_parser():
    p = argparse.ArgumentParser(prog="glr-reproduce", description=__doc__, formatter_class=common.HelpFormatter)
    p.add_argument(
        "--suite",
        choices=("mlp", "cnn"),
        default="mlp",
        help="mlp: the paper's network and rows; cnn: the small CNN with ReLU and step units",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="one seed, 3 epochs (mlp: K=50), 300 test examples (100 certified at 1000 draws): about 7 minutes on 2 "
        "cores",
    )
    p.add_argument(
        "--dataset", default="mnist5k", help="mnist5k (offline) or a prepared TFDS image dataset such as mnist"
    )
    p.add_argument("--data-dir", default=None, help="prepared TFDS data directory")
    p.add_argument("--seeds", type=int, default=None, help="seeds per row (default 3; 1 with --quick)")
    p.add_argument(
        "--rows",
        default=None,
        help="comma-separated row keys of the suite, or all (default: mlp the paper's rows, and with all also the "
        "backprop-free peers es_sigmoid, es_threshold, fg_sigmoid; cnn bp_cnn, glr_cnn, glr_cnn_step, and with all "
        "also bp_resnet, glr_resnet, which more than double the run's time; an unknown key is an error that lists "
        "them all)",
    )
    p.add_argument("--no-twins", action="store_true", help="skip the BP twins of the GLR rows")
    p.add_argument(
        "--copies", type=int, default=None, help="K (mlp: 300, 50 with --quick; cnn: the --arch cnn default, 232)"
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="epochs per row, doubled for the 0-1 loss, a quarter for fine-tuning (default 12; 3 with --quick)",
    )
    p.add_argument("--examples", type=int, default=None, help="test examples measured (default all; 300 with --quick)")
    p.add_argument(
        "--whitebox-examples",
        type=int,
        default=None,
        help="examples the white-box attacks (PGD with BPDA/EOT, SPSA) craft per model (default 100; 20 with --quick)",
    )
    p.add_argument(
        "--certify-examples",
        type=int,
        default=None,
        help="test examples certified per model (default 500; 100 with --quick)",
    )
    p.add_argument(
        "--certify-samples",
        type=int,
        default=None,
        help="noisy draws per certified example (default 10000; 1000 with --quick)",
    )
    p.add_argument("--out", default="reproduction", help="folder for the runs, the evaluations and REPORT.md")
    p.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up logs")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    common.start(
        "glr-reproduce",
        args.verbose,
        "interrupted. Finished epochs and evaluations are kept: run the same command again to continue.",
    )
    try:
        from keras_glr import reproduction

        if args.rows in (None, "all"):
            rows = reproduction.SUITES[args.suite].row_keys if args.rows == "all" else None
        else:
            rows = tuple(r.strip() for r in args.rows.split(",") if r.strip())
        settings = reproduction.Settings(
            quick=args.quick,
            suite=args.suite,
            dataset=args.dataset,
            data_dir=args.data_dir,
            seeds=args.seeds,
            rows=rows,
            twins=not args.no_twins,
            copies=args.copies,
            epochs=args.epochs,
            examples=args.examples,
            whitebox_examples=args.whitebox_examples,
            certify_examples=args.certify_examples,
            certify_samples=args.certify_samples,
        )
        command = "glr-reproduce " + " ".join(sys.argv[1:] if argv is None else argv)
        path = reproduction.reproduce(settings, args.out, command=command.strip())
    except common.USER_ERRORS as error:
        return common.fail("glr-reproduce", str(error))
    print(f"\nReport: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
