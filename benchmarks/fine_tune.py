"""Fine-tuning a converted network: a BP-trained ReLU CNN binarised to step units, then GLR against bp-ste.

    python benchmarks/fine_tune.py                 # about 6 minutes on 2 cores
    python benchmarks/fine_tune.py --seeds 0 --sigma 0.3

For each seed: `glr-train --arch cnn --estimator bp` (ReLU, 12 epochs); then the
same weights with step units (`--init-from` that run, `--activation step`),
fine-tuned `--epochs` (3) epochs by GLR with the CNN's defaults, and the
same conversion fine-tuned by its fair twin, bp-ste (straight-through step
units, the same noise, optimizer, schedule and seed). Prints the test
accuracy of the ReLU network, of the step network before fine-tuning, and
after each fine-tuning, with wall times.
"""

import argparse
import dataclasses
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_glr import runs  # noqa: E402
from keras_glr.runs import RunConfig  # noqa: E402


def one_seed(seed, args, root):
    """(relu accuracy, step before, GLR after, bp-ste after, GLR seconds, bp-ste seconds) for `seed`."""
    relu = RunConfig.for_arch(arch="cnn", estimator="bp", seed=seed, run_name=f"relu_bp_seed{seed}")
    relu_run = runs.train(relu, root, verbose=0)
    tuned = RunConfig.for_arch(
        arch="cnn",
        activation="step",
        init_from=relu_run.run_dir,
        epochs=args.epochs,
        sigma=args.sigma,
        learning_rate=args.lr,
        seed=seed,
        run_name=f"step_glr_seed{seed}",
    )
    glr = runs.train(tuned, root, verbose=0)
    twin = dataclasses.replace(runs.twin_config(tuned), run_name=f"step_bp_ste_seed{seed}")
    ste = runs.train(twin, root, verbose=0)
    summary = lambda result: runs.read_json(os.path.join(result.run_dir, "run.json"))  # noqa: E731
    return (
        relu_run.metrics["test_accuracy"],
        summary(glr)["initial_test_accuracy"],
        glr.metrics["test_accuracy"],
        ste.metrics["test_accuracy"],
        summary(glr)["wall_time_seconds"],
        summary(ste)["wall_time_seconds"],
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=3, help="fine-tuning epochs")
    parser.add_argument(
        "--sigma", type=float, default=0.05, help="noise of the fine-tuned step network (GLR and its twin)"
    )
    parser.add_argument(
        "--lr", type=float, default=0.01, help="fine-tuning learning rate (Adam, cosine), both estimators"
    )
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as root:
        for seed in args.seeds:
            rows.append((seed, *one_seed(seed, args, root)))
            print(f"seed {seed} done", flush=True)
    print(
        f"\nBP ReLU CNN -> step units, fine-tuned {args.epochs} epochs (sigma {args.sigma}, lr {args.lr}); test "
        "accuracy:"
    )
    print("| seed | ReLU, BP | step, before fine-tuning | step, GLR | step, bp-ste | GLR s | bp-ste s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for seed, relu, before, glr, ste, glr_s, ste_s in rows:
        print(f"| {seed} | {relu:.4f} | {before:.4f} | {glr:.4f} | {ste:.4f} | {glr_s:.1f} | {ste_s:.1f} |")
    wins = sum(glr >= ste for _, _, _, glr, ste, _, _ in rows)
    print(f"GLR at least as accurate as bp-ste on {wins} of {len(rows)} seeds")


if __name__ == "__main__":
    main()
