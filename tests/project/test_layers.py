"""The package's layers point down only: each module imports its own layer and the layers below it.

The layers, bottom to top, are those of docs/architecture.md. The first test reads every import
statement of the package (those inside functions too: a lazy import is still a dependency); the
second imports each layer alone in a fresh interpreter and looks at what came with it.
"""

import ast
import json
import subprocess
import sys

import pytest
from conftest import ROOT

PACKAGE = ROOT / "tf_assign2"
COMMANDS = ("cifar", "mnist", "evaluate", "tune", "sweep", "report", "visualize", "export")
LAYERS = (  # bottom to top; a name covers the module and, for a package, everything in it
    ("base", ("errors", "files", "registry", "global_state", "figures")),
    ("models, data and the optimizer registry", ("models", "data", "optimizers")),
    ("settings and run folders", ("config", "runs")),
    ("training", ("training",)),
    ("analysis", ("analysis",)),
    ("experiments", ("experiments",)),
    ("public API", ("api", "")),  # "": the package's __init__, which hands out the API's names
    ("command line", ("cli", *COMMANDS)),
)


def module_names():
    """Every module of the package, by dotted name relative to it ("" for the package itself)."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names.append(".".join(parts))
    return names


def layer_of(name):
    """The index in LAYERS of a module's layer."""
    for index, (_, members) in enumerate(LAYERS):
        for member in members:
            if name == member or (member and name.startswith(member + ".")):
                return index
    raise AssertionError(f"tf_assign2.{name} is in no layer: add it to LAYERS and docs/architecture.md")


def imported_modules(name, modules):
    """The package's modules that module ``name`` imports anywhere in its text (dotted, relative)."""
    path = PACKAGE / (name.replace(".", "/") if name else "") / "__init__.py"
    if not path.is_file():
        path = PACKAGE / (name.replace(".", "/") + ".py")
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from its package, up level - 1
                anchor = package.split(".") if package else []
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(["tf_assign2", *anchor, *([base] if base else [])])
            # ``from tf_assign2 import config`` imports the module tf_assign2.config
            targets = [f"{base}.{alias.name}" if _relative(f"{base}.{alias.name}") in modules else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
            if target == "tf_assign2" or target.startswith("tf_assign2."):
                relative = _relative(target)
                while relative not in modules:
                    relative = relative.rpartition(".")[0]
                if relative != name:
                    found.add(relative)
    return found


def _relative(dotted):
    return dotted[len("tf_assign2."):] if dotted.startswith("tf_assign2.") else ""


def test_every_import_of_the_package_points_to_its_own_layer_or_below():
    modules = set(module_names())
    upward = []
    for name in sorted(modules):
        for target in sorted(imported_modules(name, modules)):
            if layer_of(target) > layer_of(name):
                upward.append(f"tf_assign2.{name} ({LAYERS[layer_of(name)][0]}) imports tf_assign2.{target} "
                              f"({LAYERS[layer_of(target)][0]})")
    assert not upward, "upward imports:\n" + "\n".join(upward)
    # the checker reads real imports: the trainer's own
    assert {"config", "models", "training.plan"} <= imported_modules("training.trainer", modules)


def test_the_checker_reports_an_upward_import(tmp_path, monkeypatch):
    """A module of the base layer that imported the API would be caught (the check can fail)."""
    fake = tmp_path / "tf_assign2"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "errors.py").write_text("def f():\n    from tf_assign2 import api\n")
    (fake / "api.py").write_text("from tf_assign2.errors import f\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    modules = set(module_names())
    assert modules == {"", "errors", "api"}
    assert imported_modules("errors", modules) == {"api"} and layer_of("api") > layer_of("errors")


@pytest.mark.slow
def test_each_layer_imported_alone_brings_no_module_of_a_layer_above():
    """Import every module of one layer in a fresh interpreter; the package modules loaded with them must
    all be of that layer or below (what the import statements at module level really pull in)."""
    modules = module_names()
    probes = {}
    for index in range(len(LAYERS)):
        own = [m for m in modules if layer_of(m) == index]
        code = ("import importlib, json, sys\n"
                f"for name in {own!r}:\n"
                "    importlib.import_module('tf_assign2' + ('.' + name if name else ''))\n"
                "print(json.dumps(sorted(m for m in sys.modules if m == 'tf_assign2' or m.startswith('tf_assign2.'))))")
        probes[index] = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True)
    for index, probe in probes.items():
        out, err = probe.communicate(timeout=300)
        assert probe.returncode == 0, err[-2000:]
        # Python imports a module's parent packages first: tf_assign2/__init__.py comes with every module
        # (it hands out the API's names on first use, importing nothing itself), so it is not counted
        loaded = [_relative(m) for m in json.loads(out.splitlines()[-1]) if m != "tf_assign2"]
        above = [m for m in loaded if layer_of(m) > index]
        assert not above, f"importing the {LAYERS[index][0]} layer loads {above}"
