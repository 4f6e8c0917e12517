"""What one training step holds in memory, checked before training starts.

A GLR step runs the B * K example copies of a batch at once (or in chunks
of whole examples, `compile(copies_per_chunk=...)`). Each copy row carries
every layer's signals (pre-activations, noise, outputs) and their
local-gradient terms (the inputs are not copied); the step's memory is about

    rows * bytes_per_row,   bytes_per_row = 4 * FACTOR * (sum of the layers' outputs per example)

with FACTOR = 5 from peak memory measured on 2 CPU cores (batch 32,
K = 20000: the paper's 196-20-10 MLP took 0.73 of the estimate, the small
CNN 0.93; at K = 2000 fixed costs of about 50 MB come on top). `check_step` refuses a step that would not fit,
or whose tensors would exceed TensorFlow's 2**31 - 1 elements per
dimension, before TensorFlow allocates anything.
"""

import math

import keras
import tensorflow as tf

# : Bytes each float32 value of a copy row costs in a step, relative to one stored value (measured, see the module
# docstring).
FACTOR = 5
#: The share of the free memory a step may take.
SHARE = 0.8
#: The most elements a dimension may hold in TensorFlow's 32-bit size arithmetic.
INT32_MAX = 2**31 - 1


class StepMemoryError(ValueError):
    """A training step would not fit in memory, or would overflow a tensor's size."""


def _output_sizes(model):
    """The values per example of every layer output of `model` (one number per output tensor)."""
    for layer in model.layers:
        try:
            outputs = keras.tree.flatten(layer.output)
        except (AttributeError, ValueError):
            continue
        yield from (_elements(t.shape) for t in outputs if hasattr(t, "shape"))


def values_per_example(model):
    """Float values a model's forward pass produces per example: every layer's outputs."""
    return max(sum(_output_sizes(model)), 1)


def widest_row(model):
    """The most values one layer's output holds per example (the widest tensor of a copy row)."""
    return max(_output_sizes(model), default=1)


def _elements(shape):
    return math.prod(d for d in tuple(shape)[1:] if d is not None) if len(tuple(shape)) > 1 else 1


def _copies_per_example(config):
    return max(int(config.copies), 1) if config.estimator == "glr" else 1


def rows(model, batch_size):
    """Copy rows one step (or one chunk) runs at once: batch * K, or the chunk's whole examples."""
    config = model.glr_config
    copies = _copies_per_example(config)
    examples = batch_size
    if config.copies_per_chunk is not None and config.estimator == "glr":
        examples = min(batch_size, max(1, config.copies_per_chunk // copies))
    return examples * copies


def step_bytes(model, batch_size):
    """Estimated bytes one training step holds: rows * 4 * FACTOR * values per example."""
    return rows(model, batch_size) * 4 * FACTOR * values_per_example(model)


def free_bytes():
    """Memory this process may still take: MemAvailable of /proc/meminfo, capped by a cgroup limit; None if unknown."""
    found = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                limit = f.read().strip()
            usage_path = path.replace("memory.max", "memory.current").replace("limit_in_bytes", "usage_in_bytes")
            with open(usage_path) as f:
                used = int(f.read().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 2**60:
            found.append(int(limit) - used)
    return min(found) if found else None


def check_step(model, batch_size, available=None):
    """Raises StepMemoryError when a training step of `batch_size` examples would not fit.

    Args:
        model: a compiled GLR model, built.
        batch_size: examples per step (the global batch; one replica holds
            its share, so this is the conservative figure).
        available: bytes free for the step; None reads the machine's
            (`free_bytes`), and skips the memory check when unknown, or on a
            GPU (whose memory TensorFlow manages).
    """
    if not getattr(model, "built", False) or not hasattr(model, "glr_config") or not batch_size:
        return
    config = model.glr_config
    copies = _copies_per_example(config)
    per_row, widest = 4 * FACTOR * values_per_example(model), widest_row(model)
    if available is None and not tf.config.list_logical_devices("GPU"):
        available = free_bytes()
    budget = None if available is None else SHARE * available
    step_rows = rows(model, batch_size)
    too_wide = step_rows * widest > INT32_MAX
    too_big = budget is not None and step_rows * per_row > budget
    if not (too_wide or too_big):
        return
    rows_that_fit = int(min(INT32_MAX // widest, INT32_MAX if budget is None else budget // per_row))
    examples_that_fit = rows_that_fit // copies
    what = (
        f"tensors of {step_rows * widest:,} values, more than TensorFlow's {INT32_MAX:,}"
        if too_wide
        else f"about {step_rows * per_row / 2**30:.1f} GiB, and {budget / SHARE / 2**30:.1f} GiB are free"
    )
    if examples_that_fit >= 1:
        advice = (
            f"Pass copies_per_chunk={examples_that_fit * copies} (the same estimate, computed {examples_that_fit} "
            "examples at a time), fewer copies, or a smaller `batch_size`."
        )
    else:
        advice = f"One example's {copies:,} copies alone do not fit: use at most copies={max(rows_that_fit, 1):,}."
    raise StepMemoryError(
        f"A training step with copies={config.copies} and batch_size={batch_size} runs {step_rows:,} example copies at "
        f"once: {what}. {advice}"
    )
