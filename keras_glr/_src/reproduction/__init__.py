"""The paper's Tables I and II from one call, with the controls the paper lacks.

    settings = reproduction.Settings(quick=True)               # suite="mlp"
    reproduction.reproduce(settings, out="reproduction")   # -> out/REPORT.md
    reproduction.reproduce(reproduction.Settings(suite="cnn"), out="reproduction_cnn")

What runs (every training is an ordinary run directory, out/runs/<name>):
    surrogate   a BP ReLU network of another architecture than the rows: the
                transfer attacks are crafted on it;
    table rows  suite "mlp", the paper's 196-20-10 network: BP sigmoid; GLR
                with sigmoid, threshold and |x| units and cross-entropy; GLR
                sigmoid and threshold with the 0-1 loss (twice the epochs, as
                in the paper); GLR sigmoid with Laplace noise. Suite "cnn",
                the small CNN: BP ReLU; GLR ReLU; GLR step units fine-tuned
                from the BP ReLU network of the same seed;
    twins       for every GLR row its BP control with the same noise,
                optimizer, epochs, seed and start (`twins`);
each for `seeds` seeds. Measured on the same test inputs: clean accuracy;
FGSM (an epsilon sweep), PGD and L-BFGS crafted once on the surrogate;
white-box PGD (BPDA / EOT gradients), SPSA and Square Attack (queries only)
and the checklist of Carlini et al. on each model; certified accuracy of each
model's smoothed classifier (randomized smoothing); the paper's four
corruptions at five severities (suite "cnn": the whole MNIST-C set). GLR rows
and twins are measured with deterministic and with noisy prediction. The
report says, row by row, where GLR is more and where less robust than its
twin.

A re-run skips finished trainings and resumes interrupted ones; evaluations
are cached per model (out/evaluations/) and the crafted inputs are saved
(out/samples/), so nothing finished is recomputed. A row whose training or
evaluation fails is reported as failed, with the error.

The package: `protocol` (the paper's numbers, rows, suites, settings and
measurement plans), `pipeline` (training, measuring, caching, `reproduce`),
`results` (the measurements read by name, the report's columns) and `report`
(REPORT.md).
"""

from keras_glr._src.reproduction.pipeline import reproduce
from keras_glr._src.reproduction.protocol import CNN_ROWS
from keras_glr._src.reproduction.protocol import CORRUPTIONS
from keras_glr._src.reproduction.protocol import HEADLINE_EPS
from keras_glr._src.reproduction.protocol import PAPER_TABLE_I
from keras_glr._src.reproduction.protocol import PAPER_TABLE_II
from keras_glr._src.reproduction.protocol import ROW_KEYS
from keras_glr._src.reproduction.protocol import ROWS
from keras_glr._src.reproduction.protocol import SUITES
from keras_glr._src.reproduction.protocol import Row
from keras_glr._src.reproduction.protocol import Settings
from keras_glr._src.reproduction.protocol import Suite
from keras_glr._src.reproduction.protocol import plans
from keras_glr._src.reproduction.protocol import row_configs
from keras_glr._src.reproduction.protocol import surrogate_config

__all__ = [
    "CNN_ROWS",
    "CORRUPTIONS",
    "HEADLINE_EPS",
    "PAPER_TABLE_I",
    "PAPER_TABLE_II",
    "ROWS",
    "ROW_KEYS",
    "SUITES",
    "Row",
    "Settings",
    "Suite",
    "plans",
    "reproduce",
    "row_configs",
    "surrogate_config",
]
