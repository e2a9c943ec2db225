"""Loads reuse the sha256 of bundle files unchanged since an earlier load; any change to a file is hashed again."""

import os
import shutil

import pytest

from st_runtime import IntegrityError, SentenceTransformer
from st_runtime import bundle as bundle_module
from st_runtime.bundle import Bundle


@pytest.fixture
def bundle_copy(export_bundle, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(export_bundle("bert-mean"), target)
    return target


@pytest.fixture
def hashed(monkeypatch):
    """The files sha256_file reads."""
    seen = []
    real = bundle_module.sha256_file

    def counting(path, *args, **kwargs):
        seen.append(path.name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(bundle_module, "sha256_file", counting)
    return seen


def test_second_load_reuses_the_digests(bundle_copy, hashed):
    SentenceTransformer(bundle_copy)
    assert "model.onnx.data" in hashed
    hashed.clear()
    model = SentenceTransformer(bundle_copy)
    assert hashed == []
    assert model.encode(["still runs"]).shape[0] == 1


def test_a_rewritten_file_is_hashed_again_even_with_its_old_size_and_mtime(bundle_copy, hashed):
    SentenceTransformer(bundle_copy)
    path = bundle_copy / "model.onnx.data"
    before = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # same size, same mtime: ctime still moves
    assert path.stat().st_size == before.st_size and path.stat().st_mtime_ns == before.st_mtime_ns
    with pytest.raises(IntegrityError, match=r"model\.onnx\.data.*sha256"):
        SentenceTransformer(bundle_copy)


def test_a_replaced_file_is_hashed_again(bundle_copy, hashed):
    SentenceTransformer(bundle_copy)
    path = bundle_copy / "tokenizer.json"
    copy = bundle_copy / "tokenizer.copy"
    shutil.copy2(path, copy)
    os.replace(copy, path)  # same bytes, new inode
    hashed.clear()
    SentenceTransformer(bundle_copy)
    assert hashed == ["tokenizer.json"]


def test_validate_always_hashes_every_file(bundle_copy, hashed):
    SentenceTransformer(bundle_copy)
    hashed.clear()
    Bundle.open(bundle_copy, verify="all")
    assert {"model.onnx", "model.onnx.data", "tokenizer.json"} <= set(hashed)


def test_switched_off_hashes_every_load(bundle_copy, hashed, monkeypatch):
    monkeypatch.setenv("ST_RUNTIME_HASH_CACHE", "off")
    SentenceTransformer(bundle_copy)
    hashed.clear()
    SentenceTransformer(bundle_copy)
    assert "model.onnx.data" in hashed


def test_an_unwritable_cache_only_costs_the_hashing(bundle_copy, hashed, monkeypatch, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("ST_RUNTIME_CACHE_DIR", str(blocker))
    SentenceTransformer(bundle_copy)
    hashed.clear()
    SentenceTransformer(bundle_copy)
    assert "model.onnx.data" in hashed
