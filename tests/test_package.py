"""How the package is put together: what may import what."""

import ast
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _imports(path):
    """Top-level module names a file imports, and those it imports at module level only."""
    with open(path) as f:
        tree = ast.parse(f.read())
    everywhere, module_level = set(), set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        everywhere.update(names)
        if node in tree.body:
            module_level.update(names)
    return everywhere, module_level


def _library_files():
    for folder, _, files in os.walk(os.path.join(ROOT, "keras_glr")):
        for name in files:
            if name.endswith(".py"):
                yield os.path.join(folder, name)


@pytest.mark.parametrize("path", sorted(_library_files()), ids=lambda p: os.path.relpath(p, ROOT))
def test_the_library_never_imports_the_apps(path):
    everywhere, _ = _imports(path)
    assert not [n for n in everywhere if n.split(".")[0] in ("apps", "keras_glr_apps")]


def test_plots_know_nothing_of_robustness():
    everywhere, _ = _imports(os.path.join(ROOT, "keras_glr", "plots.py"))
    assert not [n for n in everywhere if n.startswith("keras_glr.robustness")]


@pytest.mark.parametrize("name", ["options", "run_config", "distribution"])
def test_what_the_command_line_reads_first_needs_only_the_standard_library(name):
    _, module_level = _imports(os.path.join(ROOT, "keras_glr", f"{name}.py"))
    light = {"keras_glr.options"}  # itself standard library only
    assert {n.split(".")[0] for n in module_level if not n.startswith(tuple(light))} <= set(sys.stdlib_module_names)
