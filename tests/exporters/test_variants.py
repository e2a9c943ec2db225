"""Every variant exports behind its gate; a broken variant is refused; runtime can pick each one."""

import numpy as np
import pytest

from st_runtime import CrossEncoder, InputValidationError, SentenceTransformer, corpus

pytestmark = pytest.mark.torch
ALL = ["onnx-opt", "onnx-fp16", "onnx-int8-dynamic", "onnx-int8-static", "openvino", "openvino-fp16",
       "openvino-bf16", "openvino-int8", "openvino-int8-wo"]
TEXTS = corpus.queries(8, seed=55) + corpus.passages(4, seed=56)


@pytest.fixture(scope="module")
def tiny_all(export_bundle):
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    return export_bundle("bert-mean", tuple(ALL))


@pytest.mark.parametrize("variant", ALL)
def test_tiny_variant_passes_gate_and_runs(tiny_all, variant, coverage):
    if variant == "onnx-int8-dynamic":
        coverage("bert-mean", "int8_gate", f"yes ({variant})")
    model = SentenceTransformer(tiny_all, variant=variant)
    spec = model.manifest.variants[variant]
    assert spec.accuracy["passed"] is True and spec.accuracy["gate"]
    for figure in ("max_abs", "mean_cosine", "min_cosine", "spearman", "top10_overlap", "batch_max_abs",
                   "batch_min_cosine"):
        assert figure in spec.accuracy
    emb = model.encode(TEXTS)
    assert emb.shape == (len(TEXTS), model.get_embedding_dimension()) and np.isfinite(emb).all()
    exact = SentenceTransformer(tiny_all).encode(TEXTS)
    cos = (emb * exact).sum(1) / np.linalg.norm(emb, axis=1) / np.linalg.norm(exact, axis=1)
    assert cos.min() > 0.95


def test_batch_dependence_is_measured(tiny_all):
    """fp32 and static int8 give a text the same vector alone or in a batch; the manifest says how far others move."""
    variants = SentenceTransformer(tiny_all).manifest.variants
    for name in ("onnx-opt", "openvino", "onnx-int8-static"):
        assert variants[name].accuracy["batch_max_abs"] <= 1e-5, name
    texts = TEXTS * 3
    model = SentenceTransformer(tiny_all, variant="onnx-int8-dynamic")
    alone = np.stack([model.encode(t) for t in texts])
    moved = np.abs(alone - model.encode(texts, batch_size=32)).max()
    assert moved > 1e-5  # the per-call activation range moves dynamic int8 vectors, as the README says


def test_bf16_runs_in_bf16_and_auto_takes_it_only_with_bf16_units(tiny_all, monkeypatch):
    from st_runtime import loading

    model = SentenceTransformer(tiny_all, variant="openvino-bf16")
    assert model.manifest.variants["openvino-bf16"].settings["inference_precision"] == "bf16"
    assert "precision=bf16" in model._runner.session.description
    bundle = model.bundle
    subset = {k: v for k, v in bundle.manifest.variants.items() if k in ("onnx", "openvino", "openvino-bf16")}
    monkeypatch.setattr(bundle.manifest, "variants", subset)
    monkeypatch.setattr(loading, "cpu_flags", lambda: frozenset({"avx2", "avx512_bf16"}))
    assert loading.choose_variant(bundle, "auto", "cpu") == "openvino-bf16"
    monkeypatch.setattr(loading, "cpu_flags", lambda: frozenset({"avx2"}))  # it would run in f32 there
    assert loading.choose_variant(bundle, "auto", "cpu") == "openvino"


def test_exact_variants_are_exact(tiny_all, coverage):
    fused = SentenceTransformer(tiny_all).manifest.variants["onnx-opt"].settings.get("fused_ops") or {}
    coverage("bert-mean", "fusions", ", ".join(sorted(fused)) or "none")
    base = SentenceTransformer(tiny_all).encode(TEXTS)
    for variant in ("onnx-opt", "openvino"):
        assert np.abs(SentenceTransformer(tiny_all, variant=variant).encode(TEXTS) - base).max() <= 1e-5


def test_auto_picks_a_runnable_variant(tiny_all):
    model = SentenceTransformer(tiny_all, variant="auto")
    assert model.variant in ALL + ["onnx"]
    assert model.manifest.variants[model.variant].precision != "fp16"  # fp16 is for GPUs


def test_unknown_variant_name_is_refused(model_path, tmp_path):
    from st_runtime.export.export import export_model

    with pytest.raises(InputValidationError, match="Unknown variants"):
        export_model(str(model_path("bert-mean")), tmp_path / "x", variants=["onnx-int3"])
    assert not (tmp_path / "x").exists()


def _broken_builder(ctx, exclude=()):
    """A variant whose weights were damaged: fp32 copy of the graph with one weight scaled."""
    import onnx
    from onnx import numpy_helper

    from st_runtime.export.onnx_variants import _spec

    model = onnx.load(str(ctx.fp32))
    init = next(i for i in model.graph.initializer if len(i.dims) == 2 and i.dims[0] > 8)
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 1.5, init.name))
    onnx.save(model, str(ctx.root / "model_broken.onnx"))
    return _spec(ctx, "model_broken.onnx", "fp32", "cpu", exact=True)


def test_broken_variant_is_refused_and_forced(model_path, tmp_path, monkeypatch):
    from st_runtime.export import variants
    from st_runtime.export.export import export_model

    monkeypatch.setitem(variants.BUILDERS, "onnx-opt", _broken_builder)
    out = export_model(str(model_path("bert-mean")), tmp_path / "refused", variants=["onnx-opt"])
    model = SentenceTransformer(out)
    assert "onnx-opt" not in model.manifest.variants
    assert not (out / "model_broken.onnx").exists()
    refused = model.manifest.parity["refused_variants"]["onnx-opt"]
    assert refused["figures"]["max_abs"] > 1e-5
    forced = export_model(str(model_path("bert-mean")), tmp_path / "forced", variants=["onnx-opt"], force=True)
    spec = SentenceTransformer(forced).manifest.variants["onnx-opt"]
    assert spec.accuracy["passed"] is False and spec.settings["forced"] is True


def test_gate_logic():
    from st_runtime.export.gates import passes

    assert passes({"max_abs": 1e-6}, {"max_abs": 1e-5})
    assert not passes({"max_abs": 2e-5}, {"max_abs": 1e-5})
    assert not passes({"max_abs": float("nan")}, {"max_abs": 1e-5})
    assert passes({"mean_cosine": 0.995, "top10_overlap": 0.95}, {"mean_cosine": 0.99, "top10_overlap": 0.9})
    assert not passes({"mean_cosine": 0.995, "top10_overlap": 0.85}, {"mean_cosine": 0.99, "top10_overlap": 0.9})
    assert not passes({"mean_cosine": 0.995}, {"mean_cosine": 0.99, "top10_overlap": 0.9})


def test_quantize_existing_bundle_cli(model_path, tmp_path, capsys):
    from st_runtime.export.export import export_model
    from st_runtime.cli import main

    out = export_model(str(model_path("bert-mean")), tmp_path / "q")
    assert main(["quantize", str(out), "--variants", "onnx-int8-dynamic"]) == 0
    assert "onnx-int8-dynamic" in SentenceTransformer(out).manifest.variants
    assert main(["validate", str(out)]) == 0
    assert "onnx-int8-dynamic: gate OK" in capsys.readouterr().out


def test_cross_encoder_int8_variant(export_bundle):
    """Written only when it meets its gate on the gate split; otherwise refused with the figures that missed it.

    (The tiny random cross-encoder sits at the edge: Spearman 0.979-0.98 on held-out text.)
    """
    from st_runtime.export.gates import passes

    bundle = export_bundle("ce-bert", ("onnx-int8-dynamic",))
    manifest = CrossEncoder(bundle).manifest
    if "onnx-int8-dynamic" in manifest.variants:
        model = CrossEncoder(bundle, variant="onnx-int8-dynamic")
        assert model.manifest.variants["onnx-int8-dynamic"].accuracy["passed"]
        assert np.isfinite(model.predict([("a", "b"), ("c", "d")])).all()
    else:
        refused = manifest.parity["refused_variants"]["onnx-int8-dynamic"]
        assert refused["gate"]["spearman"] == 0.98 and not passes(refused["figures"], refused["gate"])
        assert refused["figures"]["split"] == "gate"


@pytest.mark.slow
def test_minilm_all_variants(export_bundle):
    pytest.importorskip("nncf")
    bundle = export_bundle("minilm-real", tuple(ALL))
    manifest = SentenceTransformer(bundle).manifest
    assert set(ALL) <= set(manifest.variants), manifest.parity.get("refused_variants")
    for name in ALL:
        acc = manifest.variants[name].accuracy
        assert acc["passed"], (name, acc)


def test_int8_settings_come_from_this_cpu(tiny_all):
    """reduce_range (ORT) and overflow_fix (NNCF) are what st_runtime.hardware.int8_settings picks here."""
    from st_runtime.hardware import int8_settings

    chosen = int8_settings()
    variants = SentenceTransformer(tiny_all).manifest.variants
    for name in ("onnx-int8-dynamic", "onnx-int8-static"):
        assert variants[name].settings["reduce_range"] is chosen["reduce_range"]
        assert variants[name].settings["isa_reason"] == chosen["reason"]
    assert variants["openvino-int8"].settings["overflow_fix"] == chosen["overflow_fix"]
    assert variants["openvino-int8"].settings["built_on_isa"] == chosen["isa"]


def test_int8_settings_tuned_on_the_selection_split_are_the_ones_built(tiny_all):
    """onnx-int8-static's calibration method and openvino-int8's SmoothQuant alpha: each candidate scored on the
    selection split, the best one built and recorded (test_int8_tuning.py checks the choice itself, slow)."""
    variants = SentenceTransformer(tiny_all).manifest.variants
    for name, key in (("onnx-int8-static", "calibration_method"), ("openvino-int8", "smooth_quant_alpha")):
        tuned = variants[name].settings["tuned"]
        assert tuned["measured_on"] == "selection split" and len(tuned["trials"]) == 3
        best = max(tuned["trials"], key=lambda t: t["score"])
        assert tuned["chosen"] == {key: best[key]} == {key: variants[name].settings[key]}
