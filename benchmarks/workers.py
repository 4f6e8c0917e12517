"""GLR training steps per second: one process against two workers, side by side.

    python benchmarks/workers.py            # 3 rounds (about 3.5 minutes on 2 cores)
    python benchmarks/workers.py --rounds 1

The paper's 196-20-10 step network on mnist5k, at K = 100 with global batch
32 (the default run: small steps) and at K = 2000 with global batch 128 (heavy
steps); under two workers each takes half of the global batch. Each round
starts one single-process run and one run of two MultiWorkerMirroredStrategy
workers on 127.0.0.1, one after the other; each times 100 steps after 20
warm-up steps. Prints the median steps per second of each and their ratio.
On one machine the workers share its two cores and talk through gRPC: the
ratio measures the all-reduce's overhead, not a speed-up.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

WARMUP, TIMED = 20, 100
SETTINGS = ((100, 32), (2000, 128))  # (K, global batch)


def measure(copies, batch_size):
    """One process's part: train, time the steps, print steps/s (the chief)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from keras_glr import data
    from keras_glr._src import distribution
    from keras_glr.runs import RunConfig
    from keras_glr.runs import build_model

    strategy = distribution.make_strategy("multi-worker" if "TF_CONFIG" in os.environ else "none")
    config = RunConfig(copies=copies, batch_size=batch_size)
    keras.utils.set_random_seed(0)
    splits = data.load("mnist5k", batch_size=config.batch_size, image_size=14, flatten=True)
    with strategy.scope():
        model = build_model(config, splits.info, splits.steps_per_epoch)

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == WARMUP - 1:
                self.start = time.perf_counter()
            elif batch == WARMUP + TIMED - 1:
                self.seconds = time.perf_counter() - self.start

    clock = Clock()
    model.fit(splits.train_epochs(), steps_per_epoch=WARMUP + TIMED, epochs=1, callbacks=[clock], verbose=0)
    if distribution.is_chief(strategy):
        print(json.dumps({"steps_per_second": TIMED / clock.seconds, "replicas": strategy.num_replicas_in_sync}))


def _run(workers, copies, batch_size):
    command = [sys.executable, os.path.abspath(__file__), "--measure", str(copies), str(batch_size)]
    if workers == 1:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])["steps_per_second"]
    from keras_glr._src import distribution

    processes = [
        subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "TF_CONFIG": config}
        )
        for config in distribution.local_cluster(workers)
    ]
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    if any(p.returncode for p in processes):
        raise RuntimeError(f"a worker failed: {[p.returncode for p in processes]}")
    return json.loads(outputs[0].strip().splitlines()[-1])["steps_per_second"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--measure", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        return measure(*args.measure)
    rows = []
    for copies, batch in SETTINGS:
        one, two = [], []
        for round_ in range(args.rounds):
            one.append(_run(1, copies, batch))
            two.append(_run(2, copies, batch))
            print(
                f"K={copies} B={batch} round {round_ + 1}: 1 process {one[-1]:.1f} steps/s, 2 workers {two[-1]:.1f} "
                "steps/s",
                flush=True,
            )
        rows.append((copies, batch, statistics.median(one), statistics.median(two)))
    print()
    print("| K, global batch | 1 process, steps/s | 2 workers, steps/s | ratio |")
    print("| --- | --- | --- | --- |")
    for copies, batch, a, b in rows:
        print(f"| {copies}, {batch} | {a:.1f} | {b:.1f} | {b / a:.2f} |")


if __name__ == "__main__":
    main()
