"""The install claims only the st_runtime name: exporters/ and benchmarks/ are installed under it, models/ not at all."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

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
