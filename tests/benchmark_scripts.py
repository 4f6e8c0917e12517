"""The scripts of benchmarks/ as modules, for their tests (benchmarks/ is not a package)."""

import importlib.util
import pathlib

FOLDER = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"


def load(name):
    """benchmarks/<name>.py, loaded as the module `<name>_benchmark`."""
    spec = importlib.util.spec_from_file_location(f"{name}_benchmark", FOLDER / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
