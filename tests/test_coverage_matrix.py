"""benchmarks/coverage_matrix.py: records -> the README table between its markers; missing cells say "not run"."""

import json

import pytest

from st_runtime.bench import coverage_matrix as cm


def _records(tmp_path, rows):
    path = tmp_path / "coverage.jsonl"
    path.write_text("".join(json.dumps({"time": "2026-12-01T12:00:00Z", "test": "t", "value": None, **r}) + "\n"
                            for r in rows))
    return path


def test_table_from_records(tmp_path):
    path = _records(tmp_path, [
        {"architecture": "bert-mean", "check": "onnx_exact", "outcome": "failed"},
        {"architecture": "bert-mean", "check": "onnx_exact", "outcome": "passed"},  # a later run replaces it
        {"architecture": "bert-mean", "check": "fusions", "outcome": "passed", "value": "Attention, Gelu"},
        {"architecture": "xlmr-mean", "check": "openvino_exact", "outcome": "failed"},
        {"architecture": "custom-code-mean", "check": "onnx_exact", "outcome": "skipped"},
    ])
    table = cm.render(cm.read_records(path))
    lines = {line.split("|")[1].strip().split()[0]: [c.strip() for c in line.split("|")[2:-1]]
             for line in table.splitlines() if line.startswith("| `")}
    assert lines["`bert-mean`"] == ["yes", "not run", "not run", "Attention, Gelu"]
    assert lines["`xlmr-mean`"] == ["not run", "**FAILED**", "not run", "not run"]
    assert lines["`custom-code-mean`"][0] == "skipped"
    assert lines["`big-random-2gb`"] == ["not run"] * 4  # shown although nothing ran
    assert "5 records" not in table and "4 records" in table


def test_readme_rewritten_between_markers_only(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{cm.START}\nold table\n{cm.END}\nafter\n")
    cm.write_readme(readme, "| new |")
    assert readme.read_text() == f"intro\n{cm.START}\n| new |\n{cm.END}\nafter\n"
    readme.write_text("no markers")
    with pytest.raises(SystemExit, match="markers"):
        cm.write_readme(readme, "| new |")
