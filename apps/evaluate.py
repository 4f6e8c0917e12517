"""glr-evaluate: clean, adversarial and corrupted accuracy of saved models.

Writes a Markdown table (models as rows, like the paper's Tables I and II),
CSV, JSON and PNG plots into --out. Runs that differ only in their seed share
a row (mean ± standard deviation).
"""

import argparse
import os
import sys

from . import common


def build_parser():
    p = argparse.ArgumentParser(prog="glr-evaluate", description=__doc__, formatter_class=common.HelpFormatter)
    p.add_argument("models", nargs="+", help="run directories (saved_models/<run>) or .keras files")
    p.add_argument(
        "--surrogate",
        default=None,
        help="model to craft transfer attacks on (the paper: a BP MLP with two hidden layers)",
    )
    p.add_argument(
        "--attacks",
        default="fgsm,lbfgs",
        help="comma-separated: fgsm, pgd, pgd-l2, bim, mim, cw, spsa, square, square-l2, lbfgs, apgd-ce, apgd-dlr, "
        "square-5000, hop-skip-jump, ensemble (the worst case per example over the last four), or all / none",
    )
    p.add_argument(
        "--eps", default="0.05,0.1,0.2", help="epsilons of the epsilon attacks (L-inf; the L2 radius for pgd-l2)"
    )
    p.add_argument(
        "--corruptions", default="paper", help="paper (the four of Table II), all, none, or comma-separated names"
    )
    p.add_argument(
        "--mode",
        choices=("auto", "transfer", "whitebox"),
        default="auto",
        help="auto: transfer with --surrogate, else whitebox (BPDA / EOT)",
    )
    p.add_argument(
        "--certify",
        action="store_true",
        help="certified accuracy of each model's smoothed (noisy) prediction at --radii (randomized smoothing)",
    )
    p.add_argument(
        "--certify-samples",
        type=int,
        default=10_000,
        help="noisy draws per example for --certify (Cohen et al. use 100,000)",
    )
    p.add_argument("--alpha", type=float, default=0.001, help="each certificate fails with probability at most alpha")
    p.add_argument(
        "--radii",
        default=",".join(str(r) for r in (0.0, 0.05, 0.1, 0.15, 0.2, 0.3)),
        help="input-space radii of the certified-accuracy columns (l2 for Gaussian noise, l1 for Laplace)",
    )
    p.add_argument(
        "--checklist",
        action="store_true",
        help="run the checks of Carlini et al. (2019) on white-box PGD at the first --eps and flag failures",
    )
    p.add_argument("--examples", type=int, default=1000, help="test examples to use")
    p.add_argument("--dataset", default=None, help="dataset for .keras files without a run directory (default mnist5k)")
    p.add_argument(
        "--image-size", type=int, default=None, help="image size for .keras files without a run directory (default 14)"
    )
    p.add_argument("--data-dir", default=None, help="prepared TFDS data directory (default: the run's)")
    p.add_argument("--save-samples", default=None, metavar="DIR", help="save the adversarial and corrupted inputs here")
    p.add_argument("--samples-from", default=None, metavar="DIR", help="reuse inputs saved with --save-samples")
    p.add_argument("--out", default="evaluation", help="folder for the table, CSV, JSON and plots")
    p.add_argument("--overwrite", action="store_true", help="replace results already in --out")
    p.add_argument("--seed", type=int, default=0, help="seed of the attacks' and corruptions' randomness")
    p.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up logs")
    return p


def test_data(entry, args):
    """The first `args.examples` test examples, as numpy arrays in the model's input shape."""
    from keras_glr import data
    from keras_glr.robustness import evaluation

    config = entry.config or {}
    shape = evaluation.input_shape(entry.model)
    x, y = data.test_arrays(
        args.dataset or config.get("dataset", "mnist5k"),
        image_size=args.image_size or config.get("image_size", 14),
        flatten=len(shape) == 1,
        examples=args.examples,
        data_dir=args.data_dir or config.get("data_dir"),
    )
    if x.shape[1:] != shape:
        raise ValueError(
            f"The test data has inputs of shape {x.shape[1:]} but {entry.label} expects {shape}; set --dataset / "
            "--image-size."
        )
    return x, y


def main(argv=None):
    args = build_parser().parse_args(argv)
    common.start("glr-evaluate", args.verbose, "interrupted; results already in --out are from an earlier run.")
    created = []
    try:
        from keras_glr.robustness import attacks
        from keras_glr.robustness import corruptions
        from keras_glr.robustness import evaluation
        from keras_glr.robustness import report

        plan = evaluation.Plan(
            attacks=attacks.parse_names(args.attacks),
            eps=attacks.parse_eps(args.eps),
            corruptions=corruptions.parse_names(args.corruptions),
            mode=args.mode,
            seed=args.seed,
            checklist=args.checklist,
            certify=args.certify,
            certify_samples=args.certify_samples,
            alpha=args.alpha,
            radii=attacks.parse_eps(args.radii, flag="--radii"),
        )
        if args.certify_samples < 1:
            raise ValueError(f"Invalid --certify-samples {args.certify_samples}: expected a positive integer.")
        if not 0 < args.alpha < 0.5:
            raise ValueError(f"Invalid --alpha {args.alpha}: expected a probability in (0, 0.5), e.g. 0.001.")
        if args.examples < 1:
            raise ValueError(f"Invalid --examples {args.examples}: expected a positive integer.")
        if os.path.exists(os.path.join(args.out, "results.json")) and not args.overwrite:
            raise ValueError(
                f"{args.out} already holds results. Pass --overwrite to replace them, or choose another --out."
            )
        from keras_glr import runs

        created = runs.make_folder(
            args.out, what="--out ", hint="Choose a writable --out."
        )  # before the work, not after it
        entries = [evaluation.load_entry(path) for path in args.models]
        surrogate = evaluation.load_entry(args.surrogate) if args.surrogate else None
        plan.resolved_mode(surrogate)
        x, y = test_data(entries[0], args)
        samples = report.load_samples(args.samples_from, x, y) if args.samples_from else None
        results, samples = evaluation.evaluate(entries, x, y, plan, surrogate, samples)
        configs = {e.label: e.config for e in entries}
        written = report.write(
            results,
            samples,
            x,
            y,
            configs,
            args.out,
            first_model_predict=lambda t: evaluation.predict_scores(entries[0].model, t),
        )
        if args.save_samples:
            written.append(report.save_samples(samples, x, y, args.save_samples))
    except common.USER_ERRORS as error:
        if created:  # a failed evaluation leaves no empty --out behind
            runs.remove_if_empty(created)  # made by runs.make_folder, so runs is loaded
        return common.fail("glr-evaluate", str(error))
    print()
    print(report.markdown_table(results, configs))
    print(f"Written to {args.out}: " + ", ".join(written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
