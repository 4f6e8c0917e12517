"""The documentation: every public name has a docstring and a page, every link and app is there, and the site builds
strictly."""

import importlib
import inspect
import os
import pathlib
import pkgutil
import re
import shutil
import subprocess
import sys

import pytest

import keras_glr

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"


def _public_modules():
    names = ["keras_glr"]
    for info in pkgutil.walk_packages(keras_glr.__path__, "keras_glr."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def _documented_objects():
    """{identifier: the members its `::: identifier` directive renders (None: all of them)} over the API pages."""
    found = {}
    for page in (DOCS / "api").glob("*.md"):
        for directive in re.split(r"^(?=::: )", page.read_text(), flags=re.M)[1:]:
            name = directive.split()[1]
            members = re.search(r"^ +members:\n((?: +- \S+\n)+)", directive, flags=re.M)
            if re.search(r"^ +members: false", directive, flags=re.M):
                found[name] = set()
            else:
                found[name] = set(re.findall(r"- (\S+)", members.group(1))) if members else None
    return found


def _public_names(module):
    """`__all__`, or the functions and classes the module defines without a leading underscore."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return [
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isfunction(value) or inspect.isclass(value))
        and value.__module__ == module.__name__
    ]


def _on_a_page(module_name, name, value, documented):
    """Whether `module_name.name` is rendered: its own directive, its module's (rendering `__all__`), or its home's."""
    if f"{module_name}.{name}" in documented:
        return True
    if module_name in documented and (documented[module_name] is None or name in documented[module_name]):
        return True
    home = value.__name__ if inspect.ismodule(value) else value.__module__
    return home in documented and not home.split(".")[1:2] == ["_src"]


def test_every_public_module_is_listed_and_every_private_one_is_not():
    public = {name for name in _public_modules()}
    assert all("._src" not in name for name in public)
    assert set(keras_glr.__all__) >= {
        "GLRModel",
        "GLRSequential",
        "convert",
        "EstimatorOptions",
        "layers",
        "noise",
        "losses",
        "activations",
        "robustness",
        "runs",
        "data",
    }
    assert not [name for name in _documented_objects() if "._src" in name], "the API pages document public names only"


@pytest.mark.parametrize("name", [m for m in _public_modules() if m != "keras_glr"])
def test_every_public_module_has_an_api_entry_and_a_docstring(name):
    module = importlib.import_module(name)
    assert inspect.getdoc(module), f"{name} has no module docstring"
    assert name in _documented_objects(), f"{name} has no `::: {name}` entry in docs/api/*.md"


@pytest.mark.parametrize("module_name", _public_modules())
def test_every_public_name_has_a_docstring_and_a_page(module_name):
    module = importlib.import_module(module_name)
    documented = _documented_objects()
    for name in _public_names(module):
        value = getattr(module, name)
        if not (inspect.isfunction(value) or inspect.isclass(value) or inspect.ismodule(value)):
            continue  # constants: their module's docstring and page describe them
        assert inspect.getdoc(value), f"{module_name}.{name} has no docstring"
        assert _on_a_page(module_name, name, value, documented), (
            f"{module_name}.{name} is on no API page: add it to the `::: {module_name}` directive in docs/api/*.md"
        )


def test_the_top_level_names_are_documented():
    documented = _documented_objects()
    for name in keras_glr.__all__:
        assert _on_a_page("keras_glr", name, getattr(keras_glr, name), documented), (
            f"keras_glr.{name} is on no API page"
        )


def test_the_readme_is_short_and_its_links_exist():
    text = README.read_text()
    assert len(text.splitlines()) <= 200, "the README is a front page: move the detail into docs/"
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), f"the README links to {target}, which does not exist"


def test_the_apps_page_shows_every_installed_program():
    scripts = re.findall(r"^(glr-[a-z]+) = ", (ROOT / "pyproject.toml").read_text(), flags=re.M)
    page = (DOCS / "guides" / "apps.md").read_text()
    assert scripts and all(f"<!-- help: {s} -->" in page for s in scripts)
    rendered = _docs_module("hooks").on_page_markdown(page, None, None, None)
    assert "<!-- help:" not in rendered and "usage: glr-train" in rendered and "--copies" in rendered


def test_the_figures_the_pages_show_exist():
    for page in [README, *DOCS.rglob("*.md")]:
        for target in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page.read_text()):
            assert (page.parent / target).resolve().is_file(), (
                f"{page.relative_to(ROOT)} shows {target}, which does not exist"
            )


def _docs_module(name):
    sys.path.insert(0, str(DOCS))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(DOCS))


def test_the_variance_figure_reads_the_equal_time_ratios_of_the_cnn(tmp_path):
    page = tmp_path / "variance.md"
    page.write_text(
        "text\n\n| option | MLP hidden | MLP logits | CNN conv 1 | CNN conv 2 | CNN logits |\n| --- | --- | --- | --- "
        "| --- | --- |\n"
        "| a | 1, 2 | 3, 4 | 5, 6 | 7, 8 | 9, 10 |\n| b | – | – | 0.5, 0.25 | 1.5, 0.125 | 2, 3.5 |\n\nafter\n| "
        "option | MLP hidden |\n"
    )
    assert _docs_module("make_figures").variance_table(page) == {"a": [6.0, 8.0, 10.0], "b": [0.25, 0.125, 3.5]}
    assert len(_docs_module("make_figures").variance_table()) >= 10  # the real page parses too


def test_the_site_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    mkdocs = shutil.which("mkdocs") or pytest.skip("mkdocs is not on PATH")
    result = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "api" / "models" / "index.html").is_file()
