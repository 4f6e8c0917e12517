"""Training runs: one configuration in, one run directory out.

    config = runs.RunConfig.for_arch(arch="cnn", epochs=5)
    result = runs.train(config, root="saved_models")      # saved_models/<name>/
    model = runs.load_model(result.run_dir)

`RunConfig` is the single list of what defines a run (each field is a
`glr-train` option); `train` writes the run directory (model, SavedModel
versions for TF Serving, curves, checkpoint) and never loses finished work:
one process holds a run at a time, `overwrite=True` replaces the old run only
once the new one has finished, and an interruption leaves the last finished
state whole (`interrupted`, `recover`). The apps guide describes the folder.
"""

from keras_glr._src.build import build_model
from keras_glr._src.checkpoints import load_model
from keras_glr._src.checkpoints import model_file
from keras_glr._src.distribution import STRATEGIES
from keras_glr._src.distribution import is_chief
from keras_glr._src.distribution import make_strategy
from keras_glr._src.export import describe_signatures
from keras_glr._src.export import export_saved_model
from keras_glr._src.json_files import DamagedFileError
from keras_glr._src.json_files import read_json
from keras_glr._src.run_config import ARCH_DEFAULTS
from keras_glr._src.run_config import RunConfig
from keras_glr._src.run_config import read_config
from keras_glr._src.run_folders import RunError
from keras_glr._src.run_folders import make_folder
from keras_glr._src.run_folders import recover
from keras_glr._src.run_folders import remove_if_empty
from keras_glr._src.run_lock import RunInUseError
from keras_glr._src.runs import RunResult
from keras_glr._src.runs import export_version
from keras_glr._src.runs import interrupted
from keras_glr._src.runs import load_data
from keras_glr._src.runs import train
from keras_glr._src.twins import twin_config

__all__ = [
    "ARCH_DEFAULTS",
    "DamagedFileError",
    "RunConfig",
    "RunError",
    "RunInUseError",
    "RunResult",
    "STRATEGIES",
    "build_model",
    "describe_signatures",
    "export_saved_model",
    "export_version",
    "interrupted",
    "is_chief",
    "load_data",
    "load_model",
    "make_folder",
    "make_strategy",
    "model_file",
    "read_config",
    "read_json",
    "recover",
    "remove_if_empty",
    "train",
    "twin_config",
]
