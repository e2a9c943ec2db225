"""The CLI and the README know the new kinds: info shows the sparse section and routes, validate re-runs parity."""

import re
from pathlib import Path

from st_runtime.cli import main

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_info_and_validate_sparse_router(export_bundle, capsys):
    bundle = export_bundle("splade-router", ("openvino",))
    assert main(["info", str(bundle)]) == 0
    out = capsys.readouterr().out
    assert "kind:         sparse-encoder" in out and "routes:       default document" in out
    assert re.search(r"\n  query +sparse-static \(SparseStaticEmbedding\)\n", out), out
    assert re.search(r"\n  document +the main graph \(", out), out
    assert main(["validate", str(bundle), "--variants", "onnx"]) == 0
    assert re.search(r"onnx: parity OK, max abs \S+ <= 1e-05", capsys.readouterr().out)


def test_info_static(export_bundle, capsys):
    assert main(["info", str(export_bundle("static-normalize"))]) == 0
    out = capsys.readouterr().out
    assert "static-embedding" in out and "StaticEmbedding -> Normalize" in out


def test_readme_sparse_example(export_bundle):
    section = README.split("### Other families", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    code = code.replace("bundles/my-splade", str(export_bundle("splade-max", ("openvino",))))
    namespace: dict = {}
    exec(compile(code, "README", "exec"), namespace)
    assert namespace["queries"].shape == (1, 30522) and namespace["docs"].shape == (2, 30522)
