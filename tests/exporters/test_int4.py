"""openvino-int4: NNCF int4 weight-only, group size / mode searched per model, behind the int8 gate."""

import shutil

import numpy as np
import pytest

from st_runtime import SentenceTransformer, corpus

pytestmark = pytest.mark.torch
TEXTS = corpus.queries(6, seed=81) + corpus.passages(6, seed=82)


def _ctx(root, hidden):
    from st_runtime.export.onnx_variants import BuildContext
    from st_runtime.manifest import Manifest

    manifest = Manifest.read(root)
    manifest.architecture["hidden_size"] = hidden
    return BuildContext(root=root, manifest=manifest)


@pytest.mark.parametrize("hidden,groups", [(384, [128, 64, 32]), (768, [128, 64, 32]), (32, [32]), (48, [-1]),
                                           (96, [32])])
def test_candidates_follow_the_hidden_size(export_bundle, hidden, groups):
    from st_runtime.export.int4 import candidates

    found = candidates(_ctx(export_bundle("bert-mean"), hidden))
    assert [c["group_size"] for c in found[::2]] == groups
    assert [c["mode"] for c in found[:2]] == ["int4_sym", "int4_asym"] and all(c["ratio"] == 1.0 for c in found)


def test_int4_builds_smaller_and_runs(export_bundle, tmp_path):
    pytest.importorskip("nncf")
    from st_runtime.export.bundle_steps import finish_manifest
    from st_runtime.export.int4 import build_openvino_int4

    root = tmp_path / "b"
    shutil.copytree(export_bundle("bert-mean", ("openvino",)), root)
    ctx = _ctx(root, 32)
    spec = build_openvino_int4(ctx)
    assert spec.precision == "int4" and spec.settings["group_size"] == 32 and spec.settings["mode"] == "int4_sym"
    ctx.manifest.variants["openvino-int4"] = spec
    finish_manifest(root, ctx.manifest)
    assert (root / spec.weights_file).stat().st_size < 0.5 * (root / "openvino_model.bin").stat().st_size
    ours = SentenceTransformer(root, variant="openvino-int4").encode(TEXTS)
    exact = SentenceTransformer(root).encode(TEXTS)
    assert np.isfinite(ours).all() and ((ours * exact).sum(1)).min() > 0.95  # normalized model: dot = cosine


@pytest.mark.slow
def test_int4_export_is_gated_with_its_footprint(bundle_root, model_path, monkeypatch):
    from st_runtime.export import gates
    from st_runtime.export.export import export_model

    out = export_model(str(model_path("bert-mean")), bundle_root / "bert-mean-int4", variants=["openvino-int4"])
    spec = SentenceTransformer(out, variant="openvino-int4").manifest.variants["openvino-int4"]
    assert spec.accuracy["passed"] is True and spec.accuracy["gate"] == gates.DEFAULT_GATES["int8"]
    assert spec.settings["search"][-1]["passed_on_selection"] is True
    footprint = spec.settings["footprint"]
    assert 0 < footprint["file_mb"] < 2 and footprint["load_s"] > 0 and 30 < footprint["peak_rss_mb"] < 2000
    # An impossible gate: every candidate is tried, the variant is refused and not written.
    monkeypatch.setitem(gates.DEFAULT_GATES, "int4", {"mean_cosine": 1.01})
    refused = export_model(str(model_path("bert-mean")), bundle_root / "bert-mean-int4-refused",
                           variants=["openvino-int4"])
    manifest = SentenceTransformer(refused).manifest
    assert "openvino-int4" not in manifest.variants and not (refused / "openvino_model_int4.xml").exists()
    refusal = manifest.parity["refused_variants"]["openvino-int4"]
    assert refusal["figures"] and [t["passed_on_selection"] for t in refusal["search"]] == [False, False]
