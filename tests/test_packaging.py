"""The install claims only the st_runtime name: exporters/ and benchmarks/ are installed under it, models/ not at all."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import importlib.util, json
names = ["models", "exporters", "benchmarks", "tests", "st_runtime", "st_runtime.export", "st_runtime.bench"]
print(json.dumps({n: importlib.util.find_spec(n) is not None for n in names}))
"""


def test_only_st_runtime_names_are_importable_outside_the_checkout(tmp_path):
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, capture_output=True, text=True, check=True)
    found = __import__("json").loads(out.stdout)
    assert found == {"models": False, "exporters": False, "benchmarks": False, "tests": False,
                     "st_runtime": True, "st_runtime.export": True, "st_runtime.bench": True}


def test_declared_packages_all_live_under_st_runtime():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert all(name == "st_runtime" or name.startswith("st_runtime.") for name in config["packages"])
    for name, folder in config["package-dir"].items():
        assert name.startswith("st_runtime.") and (ROOT / folder / "__init__.py").is_file()
    # every folder with an __init__.py under st_runtime/ is declared, so nothing is left out of a wheel
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "st_runtime").rglob("__init__.py")}
    assert on_disk <= set(config["packages"])


def test_runtime_does_not_import_repository_only_folders():
    for path in (ROOT / "st_runtime").rglob("*.py"):
        text = path.read_text()
        for name in ("exporters", "benchmarks", "models"):
            assert f"from {name}" not in text and f"import {name}" not in text, f"{path} imports {name}"


# ----- scipy is the sparse extra: a dense-only user never installs nor imports it (issue #23, footprint) ----------
SCIPY_BLOCKER = """
import importlib.abc, sys
class NoScipy(importlib.abc.MetaPathFinder):  # as if scipy were not installed
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == 'scipy':
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, NoScipy())
"""


def _requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=~!;\[ ]", req, maxsplit=1)[0].strip().lower() for req in requirements}


def test_scipy_is_the_sparse_extra_not_a_base_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert "scipy" not in _requirement_names(project["dependencies"])
    assert "scipy" in _requirement_names(extras["sparse"]) and "scipy" in _requirement_names(extras["export"])
    assert "sparse" in re.search(r"\[(.*)\]", extras["all"][0]).group(1).split(",")


def _module_level_imports(tree: ast.Module):
    """Import statements that run at import time (module body, and if/try blocks in it; not inside functions)."""
    pending = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            pending.extend(ast.iter_child_nodes(node))
        elif isinstance(node, ast.ExceptHandler):
            pending.extend(node.body)


def test_no_runtime_module_imports_scipy_at_import_time():
    for path in (ROOT / "st_runtime").rglob("*.py"):
        for node in _module_level_imports(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            assert not any(n.split(".")[0] == "scipy" for n in names), f"{path}:{node.lineno} imports scipy"


def test_sparse_features_without_scipy_name_the_extra():
    code = SCIPY_BLOCKER + """
import numpy as np
import st_runtime
from st_runtime import BackendNotInstalledError, SparseEncoder, sparse
for call in (lambda: SparseEncoder("/nonexistent-bundle"), lambda: sparse.as_csr(np.ones(3))):
    try:
        call()
    except BackendNotInstalledError as exc:
        assert 'pip install "st-runtime[sparse]"' in str(exc) and isinstance(exc, ImportError), exc
    else:
        raise AssertionError("no error without scipy")
assert sparse.check_max_active_dims(4) == 4  # the numpy-only helpers still work
print("OK")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "OK" in done.stdout, done.stderr


@pytest.mark.torch
def test_dense_encoding_never_imports_scipy(export_bundle):
    bundle = export_bundle("bert-mean")
    code = SCIPY_BLOCKER + f"""
import sys
import st_runtime
from st_runtime import SentenceTransformer, util
model = SentenceTransformer({str(bundle)!r})
emb = model.encode(["a first text", "a second, longer text than the first"], batch_size=1)
scores = model.similarity(emb, emb)
hits = util.semantic_search(emb, emb, top_k=1)
assert emb.shape[0] == 2 and scores.shape == (2, 2) and len(hits) == 2
loaded = sorted(m for m in sys.modules if m.split(".")[0] == "scipy")
assert not loaded, loaded
print("OK")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "OK" in done.stdout, done.stderr
