"""The README's Python examples run as written (bundle paths swapped for test bundles)."""

import re
from pathlib import Path

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _block_after(heading: str) -> str:
    section = README.split(heading, 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_retrieve_and_rerank_example(minilm_bundle, export_bundle, capsys):
    code = _block_after("### Retrieve and re-rank, torch-free")
    code = code.replace("bundles/all-MiniLM-L6-v2", str(minilm_bundle))
    code = code.replace("bundles/my-reranker", str(export_bundle("ce-minilm")))
    exec(compile(code, "README", "exec"), {})
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and all(re.match(r"-?\d+\.\d{3}  ", line) for line in lines)


def test_quick_use_example(minilm_bundle, capsys):
    code = _block_after("## Use").replace("bundles/all-MiniLM-L6-v2", str(minilm_bundle))
    exec(compile(code, "README", "exec"), {})
    assert "[[" in capsys.readouterr().out
