"""examples/ run as a user runs them, on the shared data, and use only the public API."""

import ast
import subprocess
import sys

import pytest
from conftest import DATA, ROOT

import tf_assign2

EXAMPLE = ROOT / "examples" / "lenet5_cifar.py"


def test_the_example_imports_only_the_public_api():
    tree = ast.parse(EXAMPLE.read_text())
    imported = [(node.module, alias.name) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                for alias in node.names]
    ours = [(module, name) for module, name in imported if module and module.startswith("tf_assign2")]
    assert ours and all(module == "tf_assign2" and name in tf_assign2.__all__ for module, name in ours), ours
    assert all(getattr(tf_assign2, name) is not None for _, name in ours)


@pytest.mark.slow
def test_lenet5_example_trains_and_plots(tmp_path):
    done = subprocess.run([sys.executable, str(EXAMPLE), "--data", str(DATA / "CIFAR10"), "--epochs", "1",
                           "--ntrain", "20"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "lenet5, adam 0.001, batch 50, label smoothing 0.1" in done.stdout
    assert "180 train / 20 validation / 1000 test images" in done.stdout
    line = next(s for s in done.stdout.splitlines() if s.startswith("test accuracy"))
    assert 0.0 <= float(line.split()[2].rstrip(",")) <= 1.0
    assert (tmp_path / "lenet5_conv1_filters.png").stat().st_size > 1000
    assert (tmp_path / "lenet5_curves.png").stat().st_size > 1000
