"""Manifest validation: format version, paths outside the bundle, missing sections."""

import json

import pytest

from st_runtime.errors import ManifestError
from st_runtime.manifest import FORMAT_VERSION, Manifest, check_relative_path


def _minimal() -> dict:
    return {
        "format": "st-runtime-bundle",
        "format_version": FORMAT_VERSION,
        "kind": "sentence-transformer",
        "tokenizer": {"file": "tokenizer.json"},
        "variants": {"onnx": {"file": "model.onnx"}},
        "default_variant": "onnx",
        "files": {"model.onnx": {"sha256": "0", "size": 1}, "tokenizer.json": {"sha256": "0", "size": 1}},
        "embedding": {"dimension": 8},
    }


def test_minimal_manifest_round_trips(tmp_path):
    manifest = Manifest.from_dict(_minimal())
    manifest.write(tmp_path)
    again = Manifest.read(tmp_path)
    assert again.embedding.dimension == 8 and again.default_variant == "onnx"


def test_newer_format_version_is_refused():
    data = _minimal()
    data["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(ManifestError, match="Upgrade st-runtime"):
        Manifest.from_dict(data)


@pytest.mark.parametrize("path", ["../model.onnx", "/etc/passwd", "a/../../b", "C:\\x", ""])
def test_paths_outside_bundle_are_refused(path):
    data = _minimal()
    data["variants"]["onnx"]["file"] = path
    data["files"][path] = {"sha256": "0", "size": 1}
    with pytest.raises(ManifestError, match="outside the bundle"):
        Manifest.from_dict(data)
    with pytest.raises(ManifestError):
        check_relative_path(path)


def test_unlisted_file_is_refused():
    data = _minimal()
    del data["files"]["model.onnx"]
    with pytest.raises(ManifestError, match="no checksum entry"):
        Manifest.from_dict(data)


def test_kind_needs_its_section():
    data = _minimal()
    data["kind"] = "cross-encoder"
    with pytest.raises(ManifestError, match="cross_encoder"):
        Manifest.from_dict(data)


def test_not_json(tmp_path):
    (tmp_path / "st_runtime.json").write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        Manifest.read(tmp_path)


def test_foreign_json(tmp_path):
    (tmp_path / "st_runtime.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(ManifestError, match="not an st-runtime bundle manifest"):
        Manifest.read(tmp_path)
