"""--static-shapes: OpenVINO IRs reshaped to fixed (batch, length) buckets, run padded/split by the runtime."""

import numpy as np
import pytest

from st_runtime import InputValidationError, SentenceTransformer, corpus

pytestmark = pytest.mark.torch
SHAPES = "1x16,4x64,8x128"  # bert-mean truncates at 128 tokens
TEXTS = corpus.queries(9, seed=71) + corpus.passages(6, seed=72) + [" ".join(["word"] * 400), ""]


@pytest.fixture(scope="module")
def static_bundle(export_bundle, tmp_path_factory):
    """The session's bert-mean + openvino bundle, copied, with the static-shape variant built into it (the builder
    and the runtime; the gated export path is the slow test below)."""
    pytest.importorskip("openvino")
    import shutil

    from st_runtime.export.bundle_steps import finish_manifest
    from st_runtime.export.static_shapes import build_static, check_buckets
    from st_runtime.manifest import Manifest

    root = tmp_path_factory.mktemp("static") / "bundle"
    shutil.copytree(export_bundle("bert-mean", ("openvino",)), root)
    manifest = Manifest.read(root)
    manifest.variants["openvino-static-shapes"] = build_static(root, manifest, "openvino",
                                                               check_buckets(manifest, SHAPES))
    finish_manifest(root, manifest)
    return root


def test_manifest_records_buckets_sharing_the_weights(static_bundle):
    from st_runtime.export.static_shapes import compare_with_dynamic

    model = SentenceTransformer(static_bundle, variant="openvino-static-shapes")
    spec = model.manifest.variants["openvino-static-shapes"]
    entries = spec.settings["static_shapes"]
    assert [(e["batch"], e["length"]) for e in entries] == [(1, 16), (4, 64), (8, 128)]
    assert {e["weights_file"] for e in entries} == {"openvino_model.bin"}  # same bytes: shared, not copied
    assert spec.settings["static_of"] == "openvino" and "token_embeddings" in spec.settings["sequence_outputs"]
    assert compare_with_dynamic(static_bundle, model.manifest, "openvino-static-shapes",
                                "sentence-transformer")["max_abs_vs_dynamic"] <= 1e-5


@pytest.mark.slow
def test_export_gates_the_static_variant(bundle_root, model_path):
    from st_runtime.export.export import export_model

    out = export_model(str(model_path("bert-mean")), bundle_root / "bert-mean-static-gated", variants=["openvino"],
                       static_shapes=SHAPES)
    spec = SentenceTransformer(out, variant="openvino-static-shapes").manifest.variants["openvino-static-shapes"]
    assert spec.accuracy["passed"] is True and spec.accuracy["max_abs"] <= 1e-5
    assert spec.accuracy["max_abs_vs_dynamic"] <= 1e-5


def test_shapes_compile_static(static_bundle):
    session = SentenceTransformer(static_bundle, variant="openvino-static-shapes")._runner.session
    shapes = session.compiled_input_shapes()
    assert set(shapes) == {"1x16", "4x64", "8x128"}
    for label, ports in shapes.items():
        batch, length = map(int, label.split("x"))
        assert all(p.is_static and [d.get_length() for d in p] == [batch, length] for p in ports), (label, ports)


@pytest.mark.parametrize("batch_size", [1, 3, 8, 32])
def test_equal_to_the_dynamic_graph(static_bundle, batch_size):
    dynamic = SentenceTransformer(static_bundle, variant="openvino").encode(TEXTS, batch_size=batch_size)
    static = SentenceTransformer(static_bundle, variant="openvino-static-shapes")
    assert np.abs(static.encode(TEXTS, batch_size=batch_size) - dynamic).max() <= 1e-5
    tokens = static.encode(TEXTS[:5], output_value="token_embeddings", batch_size=batch_size)
    ref = SentenceTransformer(static_bundle, variant="openvino").encode(TEXTS[:5], output_value="token_embeddings")
    assert all(a.shape == b.shape and np.abs(a - b).max() <= 1e-5 for a, b in zip(tokens, ref))


def test_longer_than_longest_bucket_truncates_never_fails(static_bundle):
    model = SentenceTransformer(static_bundle, variant="openvino-static-shapes")
    assert model.max_seq_length == 128
    long = " ".join(["token"] * 1000)
    assert np.isfinite(model.encode([long, "short"])).all()
    with pytest.raises(InputValidationError, match="longest bucket"):
        model.max_seq_length = 200
    model.max_seq_length = 20  # shorter is fine
    assert model.encode([long]).shape == (1, model.get_embedding_dimension())


def test_auto_passes_over_static_shapes(static_bundle):
    from st_runtime.loading import auto_choice

    model = SentenceTransformer(static_bundle)
    choice = auto_choice(model.manifest, "cpu")
    assert choice.name != "openvino-static-shapes"
    assert "fixed-shape" in choice.skipped["openvino-static-shapes"]


def test_buckets_that_cannot_hold_max_seq_length_are_refused(export_bundle):
    from dataclasses import replace

    from st_runtime.export.static_shapes import check_buckets
    from st_runtime.export.variants import add_variants
    from st_runtime.manifest import Manifest

    manifest = Manifest.read(export_bundle("bert-mean"))
    with pytest.raises(InputValidationError, match="length >= 128"):
        check_buckets(manifest, "1x64,4x100")
    with pytest.raises(InputValidationError, match="pads on the left"):
        check_buckets(replace(manifest, tokenizer=replace(manifest.tokenizer, padding_side="left")), "1x128")
    with pytest.raises(InputValidationError, match="has none"):  # before anything is built
        add_variants(None, export_bundle("bert-mean"), manifest, [], static_shapes="1x128")
