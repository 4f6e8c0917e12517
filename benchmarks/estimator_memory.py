"""Peak tensor memory of one training step of each estimator against an inference pass, on the small CNN.

    python benchmarks/estimator_memory.py                      # P = 1000, batch 256 (about a minute on 2 cores)
    python benchmarks/estimator_memory.py --copies 100 --batch-size 32

Memory is TensorFlow's allocator on the CPU (`tf.config.experimental.
get_memory_info`): the peak of the tensors alive during one step, the
weights, the optimizer's slots and the batch included, after the step has
been traced once. The inference pass is `model(x, training=False)` in a
`tf.function` on the same batch. Weight perturbation and SPSA hold one
perturbed network at a time, so their peak stays at the inference pass's
whatever P (target: within 1.2 times); GLR and the backprop controls keep
every copy's activations of the batch.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

from keras_glr import runs  # noqa: E402

ESTIMATORS = ("weight-perturbation", "spsa", "forward-gradient", "glr", "bp")
TARGET = 1.2  # for the estimators that hold one perturbed network at a time
IN_INFERENCE_MEMORY = ("weight-perturbation", "spsa")


def peak_during(fn):
    """The allocator's peak (bytes) while fn() runs, from a peak reset to the memory in use."""
    tf.config.experimental.reset_memory_stats("CPU:0")
    fn()
    return tf.config.experimental.get_memory_info("CPU:0")["peak"]


def measure(estimator, copies, batch_size):
    """(inference peak, step peak) in bytes, for the CNN trained by `estimator` with `copies` per step."""
    options = dict(arch="cnn", estimator=estimator, copies=1 if estimator == "bp" else copies, batch_size=batch_size)
    config = runs.RunConfig.for_arch(**options)
    splits = runs.load_data(config)
    model = runs.build_model(config, splits.info, splits.steps_per_epoch)
    x, y = (tf.identity(t) for t in next(iter(splits.train)))
    del splits
    infer = tf.function(lambda x: model(x, training=False))
    model.train_on_batch(x, y)  # build and trace outside the measurement
    infer(x)
    return peak_during(lambda: infer(x)), peak_during(lambda: model.train_on_batch(x, y))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="estimator_memory.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=1000, help="P (K): perturbations, directions or copies")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--estimators", default=",".join(ESTIMATORS))
    args = parser.parse_args(argv)
    tf.get_logger().setLevel("ERROR")  # one trace per model is expected here
    print(f"CNN, batch {args.batch_size}, {args.copies} copies per step (bp: 1); peak tensor memory in MB")
    print("| estimator | inference pass | training step | ratio | within 1.2x (target) |")
    print("| --- | --- | --- | --- | --- |")
    results = {}
    for estimator in args.estimators.split(","):
        inference, step = measure(estimator, args.copies, args.batch_size)
        results[estimator] = step / inference
        print(
            f"| {estimator} | {inference / 1e6:.1f} | {step / 1e6:.1f} | {step / inference:.2f} | "
            f"{('yes' if step <= TARGET * inference else 'no') if estimator in IN_INFERENCE_MEMORY else '—'} |",
            flush=True,
        )
    return results


if __name__ == "__main__":
    main()
