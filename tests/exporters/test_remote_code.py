"""Custom-code models (auto_map + trust_remote_code): refused before import without the flag, exact with it,
and the bundle neither contains nor runs that code."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from st_runtime import RemoteCodeError, SentenceTransformer, corpus

NAME = "custom-code-mean"
TEXTS = corpus.queries(10, seed=91) + corpus.passages(5, seed=92) + ["", "x"]


def _cli(args, env):
    return subprocess.run([sys.executable, "-m", "st_runtime.cli", *args], capture_output=True, text=True, env=env,
                          timeout=600)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("remote-code")
    return {**os.environ, "HF_MODULES_CACHE": str(tmp / "hf-modules"), "HF_HUB_OFFLINE": "1",
            "ST_RUNTIME_REMOTE_CODE_MARKER": str(tmp / "imported.txt")}


def test_detection_reads_json_only(tmp_path, model_path):
    from st_runtime.export.source import custom_code

    assert custom_code(model_path("bert-mean")) == []
    found = custom_code(model_path(NAME))
    assert any("maps AutoModel to" in f and "modeling_tiny_custom" in f for f in found), found
    (tmp_path / "modules.json").write_text(json.dumps([{"idx": 0, "name": "0", "path": "", "type": "custom_st.Transformer"}]))
    assert custom_code(tmp_path) == ["modules.json loads the module class 'custom_st.Transformer'"]


def test_refused_without_the_flag_before_any_code_is_imported(tmp_path, model_path, env):
    marker = Path(env["ST_RUNTIME_REMOTE_CODE_MARKER"])
    marker.unlink(missing_ok=True)
    out = tmp_path / "bundle"
    proc = _cli(["export", str(model_path(NAME)), str(out)], env)
    assert proc.returncode == 2, proc.stderr
    assert "runs its own Python code" in proc.stderr and "--trust-remote-code" in proc.stderr
    assert not marker.exists() and not out.exists()
    with pytest.raises(RemoteCodeError, match="trust-remote-code"):
        from st_runtime.export.export import export_model

        export_model(str(model_path(NAME)), out)


def test_exported_with_the_flag_exact_and_code_free(tmp_path, model_path, env, coverage):
    coverage(NAME, "onnx_exact")
    coverage(NAME, "openvino_exact")
    marker = Path(env["ST_RUNTIME_REMOTE_CODE_MARKER"])
    marker.unlink(missing_ok=True)
    out = tmp_path / "bundle"
    proc = _cli(["export", str(model_path(NAME)), str(out), "--trust-remote-code", "--variants", "openvino"], env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert marker.exists()  # the code did run, at export, to trace the graph
    assert not [p for p in out.rglob("*") if p.suffix in (".py", ".pyc")]
    manifest = json.loads((out / "st_runtime.json").read_text())
    assert manifest["source"]["trust_remote_code"] is True
    assert manifest["variants"]["onnx"]["accuracy"]["max_abs"] <= 1e-5 and "openvino" in manifest["variants"]
    assert "auto_map" not in json.dumps(manifest)

    from sentence_transformers import SentenceTransformer as TorchST

    ref = TorchST(str(model_path(NAME)), device="cpu", trust_remote_code=True).encode(TEXTS)
    for variant in ("onnx", "openvino"):
        assert np.abs(SentenceTransformer(out, variant=variant).encode(TEXTS) - ref).max() <= 1e-5, variant

    # Loading and encoding never imports the model's code (nor transformers): run it in a fresh process.
    marker.unlink()
    check = ("import sys, st_runtime; m = st_runtime.SentenceTransformer(sys.argv[1]); m.encode(['a b c']); "
             "bad = [n for n in sys.modules if n.startswith(('transformers', 'torch')) or 'tiny_custom' in n]; "
             "assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", check, str(out)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not marker.exists()


def test_quantize_and_validate_need_the_flag_too(tmp_path, model_path, env, capsys):
    """`quantize` and `validate` load the torch model again: refused without --trust-remote-code, before any of
    its code is imported (the bundle left as it was), and working with it."""
    from st_runtime.cli import main
    from st_runtime.export.export import export_model

    out = export_model(str(model_path(NAME)), tmp_path / "bundle", trust_remote_code=True)
    marker = Path(env["ST_RUNTIME_REMOTE_CODE_MARKER"])
    marker.unlink(missing_ok=True)
    before = (out / "st_runtime.json").read_bytes()
    both = ("import sys; from st_runtime.cli import main; "
            "print([main(['quantize', sys.argv[1], '--variants', 'onnx-opt']), main(['validate', sys.argv[1]])])")
    proc = subprocess.run([sys.executable, "-c", both, str(out)], capture_output=True, text=True, env=env, timeout=600)
    assert proc.stdout.strip().splitlines()[-1] == "[2, 2]", (proc.stdout, proc.stderr[-2000:])
    assert proc.stderr.count("runs its own Python code") == 2 and "--trust-remote-code" in proc.stderr, proc.stderr
    assert not marker.exists()
    assert (out / "st_runtime.json").read_bytes() == before
    # with the flag (in this process, where the test models' code is importable anyway)
    assert main(["quantize", str(out), "--variants", "onnx-opt", "--trust-remote-code"]) == 0
    assert "onnx-opt" in json.loads((out / "st_runtime.json").read_text())["variants"]
    capsys.readouterr()
    assert main(["validate", str(out), "--trust-remote-code"]) == 0
    printed = capsys.readouterr().out
    assert "onnx: parity OK" in printed and "onnx-opt: parity OK" in printed, printed
    assert not [p for p in out.rglob("*") if p.suffix in (".py", ".pyc")]
