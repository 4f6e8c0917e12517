"""Several seeds per row: mean +- standard deviation, and when a gap counts.

Rule (stated in every report that uses it): a difference between two rows is
marked significant only when the gap between their means exceeds the sum of
their seeds' sample standard deviations, |m_a - m_b| > s_a + s_b, with at
least two seeds in each row. With one seed nothing is marked: the seeds'
spread is unknown.
"""

import dataclasses
import math

RULE = (
    "A difference is marked significant (*) only when the gap between the two "
    "rows' means exceeds the sum of their seeds' standard deviations "
    "(|m_a - m_b| > s_a + s_b), with at least two seeds per row."
)


@dataclasses.dataclass(frozen=True)
class SeedSummary:
    """Mean, sample standard deviation (ddof=1) and count of per-seed values."""

    mean: float
    std: float
    n: int

    def __str__(self):
        if self.n == 0:
            return "n/a"
        if self.n == 1:
            return f"{self.mean:.3f}"
        return f"{self.mean:.3f} ± {self.std:.3f}"


def summarize(values):
    """Summarizes per-seed values (NaN entries, e.g. failed runs, are skipped)."""
    values = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    n = len(values)
    if n == 0:
        return SeedSummary(math.nan, math.nan, 0)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return SeedSummary(mean, std, n)


def significant(a, b):
    """True when summaries `a` and `b` differ by more than their spread (see RULE)."""
    if a.n < 2 or b.n < 2:
        return False
    return abs(a.mean - b.mean) > a.std + b.std
