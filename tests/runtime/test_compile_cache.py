"""OpenVINO's compiled-model cache: in the user cache, keyed by graph hashes, CPU and version; can be turned off."""

import numpy as np
import pytest

from st_runtime import SentenceTransformer
from st_runtime.bundle import Bundle
from st_runtime.compile_cache import cache_key, openvino_cache_dir

pytest.importorskip("openvino")
TEXTS = ["a short one", "a somewhat longer text about caching compiled models"]


@pytest.fixture()
def bundle(export_bundle):
    return export_bundle("bert-mean", ("openvino",))


def test_key_follows_graph_cpu_and_version():
    assert cache_key(["a", "b"], "2026.1") != cache_key(["a", "c"], "2026.1") != cache_key(["a", "b"], "2026.2")
    assert cache_key(["a", "b"], "2026.1") == cache_key(["a", "b"], "2026.1")


def test_second_load_uses_the_cache_outside_the_bundle(bundle, tmp_path, monkeypatch):
    monkeypatch.setenv("ST_RUNTIME_CACHE_DIR", str(tmp_path / "cache"))
    files_before = sorted(p.name for p in bundle.iterdir())
    first = SentenceTransformer(bundle, variant="openvino")
    assert "cached" in first._runner.session.description
    blobs = sorted((tmp_path / "cache" / "openvino").rglob("*.blob"))
    assert blobs, "OpenVINO wrote no compiled blob"
    weights = (bundle / "openvino_model.bin").stat().st_size
    assert max(b.stat().st_size for b in blobs) < weights / 2  # weightless: the weights stay in the verified .bin
    written = {blob: blob.stat().st_mtime_ns for blob in blobs}
    second = SentenceTransformer(bundle, variant="openvino")
    assert sorted((tmp_path / "cache" / "openvino").rglob("*.blob")) == blobs
    # read back, not compiled anew: a miss would write the blob again (as weightless blobs did without WEIGHTS_PATH)
    assert {blob: blob.stat().st_mtime_ns for blob in blobs} == written
    assert np.array_equal(first.encode(TEXTS), second.encode(TEXTS))
    assert sorted(p.name for p in bundle.iterdir()) == files_before  # nothing written into the bundle
    Bundle.open(bundle).check_files(full=True)


def test_cache_can_be_turned_off(bundle, tmp_path, monkeypatch):
    monkeypatch.setenv("ST_RUNTIME_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("ST_RUNTIME_COMPILE_CACHE", "off")
    model = SentenceTransformer(bundle, variant="openvino")
    assert "cached" not in model._runner.session.description
    assert not (tmp_path / "cache" / "openvino").exists()  # the remembered digests (hash_cache) have their own switch
    assert openvino_cache_dir(["x"], "1") is None
    monkeypatch.setenv("ST_RUNTIME_HASH_CACHE", "off")
    monkeypatch.setenv("ST_RUNTIME_CACHE_DIR", str(tmp_path / "cache-2"))
    SentenceTransformer(bundle, variant="openvino")
    assert not (tmp_path / "cache-2").exists()  # both off: nothing written to the user cache


def test_no_hashes_no_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ST_RUNTIME_CACHE_DIR", str(tmp_path))
    assert openvino_cache_dir(None, "1") is None and openvino_cache_dir([], "1") is None
    assert openvino_cache_dir(["x"], "1").parent == tmp_path / "openvino"
