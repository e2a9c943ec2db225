"""Broken, foreign or tampered bundles fail before anything runs, with a typed error naming the fix."""

import json
import shutil

import pytest

from st_runtime import (
    BundleNotFoundError,
    CrossEncoder,
    IntegrityError,
    ManifestError,
    SentenceTransformer,
    WrongModelKindError,
)


@pytest.fixture
def bundle_copy(export_bundle, tmp_path):
    source = export_bundle("bert-mean")
    target = tmp_path / "copy"
    shutil.copytree(source, target)
    return target


def test_missing_path(tmp_path):
    with pytest.raises(BundleNotFoundError, match="st-runtime export"):
        SentenceTransformer(tmp_path / "nope")


def test_folder_without_manifest(tmp_path):
    with pytest.raises(BundleNotFoundError, match="not an st-runtime bundle"):
        SentenceTransformer(tmp_path)


def test_sentence_transformers_folder_gets_a_hint(model_path):
    with pytest.raises(BundleNotFoundError, match="export it first"):
        SentenceTransformer(model_path("minilm-real"))


def test_bit_flip_fails_checksum(bundle_copy):
    path = bundle_copy / "model.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="sha256"):
        SentenceTransformer(bundle_copy)


def test_truncated_graph(bundle_copy):
    path = bundle_copy / "model.onnx"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(IntegrityError, match="truncated"):
        SentenceTransformer(bundle_copy)


def test_missing_tokenizer(bundle_copy):
    (bundle_copy / "tokenizer.json").unlink()
    with pytest.raises(IntegrityError, match="missing"):
        SentenceTransformer(bundle_copy)


def test_unverified_load_still_refuses_a_truncated_graph(bundle_copy):
    path = bundle_copy / "model.onnx"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(IntegrityError):
        SentenceTransformer(bundle_copy, verify=False)


def test_manifest_path_traversal(bundle_copy):
    manifest_path = bundle_copy / "st_runtime.json"
    data = json.loads(manifest_path.read_text())
    data["variants"]["onnx"]["file"] = "../outside.onnx"
    data["files"]["../outside.onnx"] = data["files"]["model.onnx"]
    manifest_path.write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="outside the bundle"):
        SentenceTransformer(bundle_copy)


def test_newer_format(bundle_copy):
    manifest_path = bundle_copy / "st_runtime.json"
    data = json.loads(manifest_path.read_text())
    data["format_version"] = 99
    manifest_path.write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="version 99"):
        SentenceTransformer(bundle_copy)


def test_cross_encoder_bundle_as_sentence_transformer(export_bundle):
    with pytest.raises(WrongModelKindError, match="CrossEncoder"):
        SentenceTransformer(export_bundle("ce-bert"))


def test_sentence_transformer_bundle_as_cross_encoder(export_bundle):
    with pytest.raises(WrongModelKindError, match="SentenceTransformer"):
        CrossEncoder(export_bundle("bert-mean"))


def test_unknown_variant(export_bundle):
    from st_runtime import InputValidationError

    with pytest.raises(InputValidationError, match="Unknown variant"):
        SentenceTransformer(export_bundle("bert-mean"), variant="nope")


def _flip_a_bit(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_load_hashes_only_the_chosen_variant_but_validate_hashes_all(export_bundle, tmp_path):
    from st_runtime.bundle import Bundle

    target = tmp_path / "full"
    shutil.copytree(export_bundle("bert-mean", ("openvino", "onnx-int8-dynamic")), target)
    assert set(Bundle.open(target).files_of("openvino")) == {"openvino_model.xml", "openvino_model.bin", "tokenizer.json"}
    _flip_a_bit(target / "openvino_model.bin")
    SentenceTransformer(target, variant="onnx")  # the damaged file belongs to a variant that is not loaded
    with pytest.raises(IntegrityError, match="openvino_model.bin.*sha256"):
        SentenceTransformer(target, variant="openvino")
    with pytest.raises(IntegrityError, match="sha256"):
        Bundle.open(target, verify="all")


def test_onnx_weights_live_beside_the_graph_and_are_checked(bundle_copy):
    from st_runtime.bundle import Bundle

    manifest = Bundle.open(bundle_copy).manifest
    assert manifest.variants["onnx"].weights_file == "model.onnx.data"
    assert (bundle_copy / "model.onnx").stat().st_size < (bundle_copy / "model.onnx.data").stat().st_size
    # The weights are hashed while the runtime maps them; a damaged byte still fails the load.
    _flip_a_bit(bundle_copy / "model.onnx.data")
    with pytest.raises(IntegrityError, match=r"model\.onnx\.data.*sha256"):
        SentenceTransformer(bundle_copy)
    SentenceTransformer(bundle_copy, verify=False)  # at your own risk: the graph still loads
