"""The paper's Tables I and II from one call, with the controls the paper lacks.

    settings = reproduction.Settings(quick=True)                 # suite="mlp"
    reproduction.reproduce(settings, out="reproduction")         # -> out/REPORT.md
    reproduction.reproduce(reproduction.Settings(suite="cnn"), out="reproduction_cnn")

A suite (`SUITES`) is the protocol: the rows of the tables (a training
configuration each, run for several seeds), their BP twins, the transfer
surrogate, and what is measured on every model. `reproduce` trains what is
missing, evaluates what is not cached and writes REPORT.md; the guide
"Reproducing the paper" says what the report holds.
"""

from keras_glr._src.reproduction import PAPER_TABLE_I
from keras_glr._src.reproduction import PAPER_TABLE_II
from keras_glr._src.reproduction import SUITES
from keras_glr._src.reproduction import Row
from keras_glr._src.reproduction import Settings
from keras_glr._src.reproduction import Suite
from keras_glr._src.reproduction import reproduce

__all__ = ["PAPER_TABLE_I", "PAPER_TABLE_II", "Row", "SUITES", "Settings", "Suite", "reproduce"]
