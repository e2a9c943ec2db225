"""Export failures are clear and atomic: nothing is left at the destination."""

import os
import signal
import subprocess
import sys
import time

import pytest

from st_runtime import ExportError, ParityError, UnsupportedModelError

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def export():
    pytest.importorskip("torch")
    from st_runtime.export.export import export_model

    return export_model


def _leftovers(parent):
    return [p.name for p in parent.iterdir() if ".partial-" in p.name or ".old-" in p.name]


def test_missing_model_path(export, tmp_path):
    with pytest.raises(ExportError, match="does not exist"):
        export(str(tmp_path / "no-such-model"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_folder_that_is_not_a_model(export, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnsupportedModelError, match="not a Sentence Transformers model"):
        export(str(tmp_path / "empty"), tmp_path / "out")


def test_unsupported_module(export, tmp_path):
    """A module st-runtime has no graph or numpy path for (here a bag-of-words BoW) is refused by name."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import BoW

    SentenceTransformer(modules=[BoW(vocab=["apple", "pear", "plum"])]).save(str(tmp_path / "bow"))
    with pytest.raises(UnsupportedModelError, match="BoW"):
        export(str(tmp_path / "bow"), tmp_path / "out")
    assert not (tmp_path / "out").exists() and not _leftovers(tmp_path)


def test_parity_miss_writes_nothing(export, tmp_path, model_path):
    with pytest.raises(ParityError, match="max abs"):
        export(str(model_path("bert-mean")), tmp_path / "out", atol=0.0)
    assert not (tmp_path / "out").exists() and not _leftovers(tmp_path)


def test_overwrite_needed_and_atomic(export, tmp_path, model_path):
    out = export(str(model_path("bert-mean")), tmp_path / "out")
    with pytest.raises(ExportError, match="--overwrite"):
        export(str(model_path("bert-mean")), out)
    before = (out / "st_runtime.json").stat().st_mtime_ns
    export(str(model_path("bert-mean")), out, overwrite=True)
    assert (out / "st_runtime.json").stat().st_mtime_ns != before
    assert not _leftovers(tmp_path)


def test_refuses_to_replace_a_non_bundle(export, tmp_path, model_path):
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match="not an st-runtime bundle"):
        export(str(model_path("bert-mean")), tmp_path / "precious", overwrite=True)
    assert (tmp_path / "precious" / "notes.txt").exists()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_interrupted_export_leaves_no_bundle(tmp_path, model_path, sig):
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "st_runtime.cli", "export", str(model_path("bert-mean")), str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    deadline = time.time() + 120
    for line in proc.stdout:
        if "checking parity" in line or time.time() > deadline:
            break
    os.kill(proc.pid, sig)
    proc.wait(timeout=60)
    assert not out.exists()
    if sig == signal.SIGTERM:
        assert not _leftovers(tmp_path)
    else:
        # A killed process cannot clean up; the next export of the same destination removes its staging folder.
        from st_runtime.export.export import export_model

        export_model(str(model_path("bert-mean")), out)
        assert not _leftovers(tmp_path)
