"""How the package is put together: what may import what, function-level imports included."""

import ast
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIBRARY = os.path.join(ROOT, "keras_glr")

#: The library's layers, lowest first. A module imports only from its own
#: layer or a lower one; within a layer, no circle (checked below).
LAYERS = (
    (
        "foundation",
        [
            "_src",
            "options",
            "data",
            "_src.keras_private",
            "_src.autodiff",
            "_src.atomic_files",
            "_src.run_lock",
            "_src.json_files",
            "_src.version",
            "_src.registry",
            "_src.seed_statistics",
            "_src.plots",
            "_src.distribution",
            "_src.outputs",
        ],
    ),
    ("noise streams", ["_src.streams", "_src.twins"]),
    ("units", ["noise", "activations", "losses", "_src.recording"]),
    ("layers", ["layers"]),
    (
        "estimators",
        [
            "_src.recurrence",
            "_src.validation",
            "_src.copies",
            "_src.fan_out",
            "_src.backprop",
            "_src.perturbation",
            "_src.spsa",
            "_src.forward_gradient",
            "_src.estimators",
            "_src.memory",
            "_src.callbacks",
        ],
    ),
    ("models", ["_src.model", "_src.conversion"]),
    ("networks and files", ["architectures", "_src.checkpoints", "_src.export", "_src.run_config"]),
    ("runs", ["_src.build", "_src.run_folders", "_src.runs", "runs"]),
    ("robustness", ["robustness"]),
    ("reproduction", ["_src.reproduction", "reproduction"]),
    ("the package", [""]),
)


_EXACT = ("", "_src")  # these name one module each; their submodules have layers of their own


def _module_name(path):
    relative = os.path.relpath(path, ROOT)[: -len(".py")].replace(os.sep, ".")
    return relative[: -len(".__init__")] if relative.endswith(".__init__") else relative


def _exists(name):
    path = os.path.join(ROOT, *name.split("."))
    return os.path.isdir(path) or os.path.exists(path + ".py")


def _imports(path):
    """keras_glr modules a file imports (anywhere in it, and at module level only), as module names."""
    with open(path) as f:
        tree = ast.parse(f.read())
    everywhere, module_level = set(), set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [
                f"{node.module}.{a.name}" if _exists(f"{node.module}.{a.name}") else node.module for a in node.names
            ]
        everywhere.update(names)
        if node in tree.body:
            module_level.update(names)
    return everywhere, module_level


def _library_files():
    for folder, _, files in os.walk(LIBRARY):
        for name in files:
            if name.endswith(".py"):
                yield os.path.join(folder, name)


def _graph():
    """{module: the keras_glr modules it imports anywhere}, without itself."""
    graph = {}
    for path in _library_files():
        me = _module_name(path)
        everywhere, _ = _imports(path)
        graph[me] = {n for n in everywhere if n.split(".")[0] == "keras_glr" and n != me}
    return graph


def _layer(module):
    """The index in LAYERS of `module` (keras_glr.x.y): its longest listed prefix."""
    inner = module[len("keras_glr.") :] if module != "keras_glr" else ""
    best = None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if inner == prefix or (prefix not in _EXACT and inner.startswith(prefix + ".")):
                if best is None or len(prefix) > best[1]:
                    best = (index, len(prefix))
    return None if best is None else best[0]


@pytest.mark.parametrize("path", sorted(_library_files()), ids=lambda p: os.path.relpath(p, ROOT))
def test_the_library_never_imports_the_apps(path):
    everywhere, _ = _imports(path)
    assert not [n for n in everywhere if n.split(".")[0] in ("apps", "keras_glr_apps")]


def test_every_module_has_a_layer():
    assert not [m for m in _graph() if _layer(m) is None], "add the module to LAYERS"


def test_no_module_imports_from_a_higher_layer():
    upward = [
        f"{module} ({LAYERS[_layer(module)][0]}) imports {target} ({LAYERS[_layer(target)][0]})"
        for module, targets in _graph().items()
        for target in targets
        if _layer(target) > _layer(module)
    ]
    assert not upward


def test_the_imports_have_no_circle():
    graph = _graph()
    done, path = set(), []

    def visit(module):
        if module in path:
            return path[path.index(module) :] + [module]
        if module in done:
            return None
        path.append(module)
        for target in sorted(graph.get(module, ())):
            circle = visit(target)
            if circle:
                return circle
        path.pop()
        done.add(module)
        return None

    for module in sorted(graph):
        circle = visit(module)
        assert circle is None, " -> ".join(circle)


def test_the_circle_check_sees_function_level_imports(tmp_path):
    source = tmp_path / "lazy.py"
    source.write_text("def f():\n    from keras_glr._src import runs\n")
    everywhere, module_level = _imports(str(source))
    assert "keras_glr._src.runs" in everywhere and not module_level


def test_plots_know_nothing_of_robustness():
    everywhere, _ = _imports(os.path.join(LIBRARY, "_src", "plots.py"))
    assert not [n for n in everywhere if n.startswith("keras_glr.robustness")]


@pytest.mark.parametrize(
    "name", ["options", "_src/run_config", "_src/distribution", "_src/registry", "_src/json_files"]
)
def test_what_the_command_line_reads_first_needs_only_the_standard_library(name):
    with open(os.path.join(LIBRARY, f"{name}.py")) as f:
        tree = ast.parse(f.read())
    module_level = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            module_level.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            module_level.update(f"{node.module}.{alias.name}" for alias in node.names)
    light = (
        "keras_glr.options",
        "keras_glr._src.registry",
        "keras_glr._src.json_files",
        "keras_glr._src.keras_private",
    )
    assert {n.split(".")[0] for n in module_level if not n.startswith(light)} <= set(sys.stdlib_module_names)
