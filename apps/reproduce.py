"""glr-reproduce: the paper's Tables I and II from one command, with the controls it lacks.

Trains the attack surrogate and every row (BP sigmoid; GLR sigmoid, threshold
and |x|; the 0-1 loss; Laplace noise) and each GLR row's BP twin, for several
seeds; crafts the transfer attacks once; measures every model on the same
inputs; writes OUT/REPORT.md with the paper's numbers beside ours, plus CSV,
JSON and plots. Re-running skips what is finished and resumes the rest.
"""

import argparse
import sys

from . import common


def build_parser():
    p = argparse.ArgumentParser(prog="glr-reproduce", description=__doc__, formatter_class=common.HelpFormatter)
    p.add_argument("--quick", action="store_true", help="one seed, K=50, 3 epochs, 300 test examples (100 certified at 1000 draws): about 7 minutes on 2 cores")
    p.add_argument("--dataset", default="mnist5k", help="mnist5k (offline) or a prepared TFDS image dataset such as mnist")
    p.add_argument("--data-dir", default=None, help="prepared TFDS data directory")
    p.add_argument("--seeds", type=int, default=None, help="seeds per row (default 3; 1 with --quick)")
    p.add_argument("--rows", default="all", help="comma-separated row keys (glr_sigmoid, glr_threshold, ...; an unknown key is an error that lists them all)")
    p.add_argument("--no-twins", action="store_true", help="skip the BP twins of the GLR rows")
    p.add_argument("--copies", type=int, default=None, help="K (default 300; 50 with --quick)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per row, doubled for the 0-1 loss (default 12; 3 with --quick)")
    p.add_argument("--examples", type=int, default=None, help="test examples measured (default all; 300 with --quick)")
    p.add_argument("--whitebox-examples", type=int, default=None, help="examples the white-box attacks (PGD with BPDA/EOT, SPSA) craft per model (default 100; 20 with --quick)")
    p.add_argument("--certify-examples", type=int, default=None, help="test examples certified per model (default 500; 100 with --quick)")
    p.add_argument("--certify-samples", type=int, default=None, help="noisy draws per certified example (default 10000; 1000 with --quick)")
    p.add_argument("--out", default="reproduction", help="folder for the runs, the evaluations and REPORT.md")
    p.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up logs")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    common.start("glr-reproduce", args.verbose, "interrupted. Finished epochs and evaluations are kept: run the same command again to continue.")
    try:
        from keras_glr import reproduction

        rows = reproduction.ROW_KEYS if args.rows == "all" else tuple(r.strip() for r in args.rows.split(",") if r.strip())
        settings = reproduction.Settings(
            quick=args.quick, dataset=args.dataset, data_dir=args.data_dir, seeds=args.seeds, rows=rows,
            twins=not args.no_twins, copies=args.copies, epochs=args.epochs, examples=args.examples,
            whitebox_examples=args.whitebox_examples, certify_examples=args.certify_examples,
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
