"""Static int8's calibration method and openvino-int8's SmoothQuant alpha are chosen on the selection split (never
the gate split), recorded in the manifest, and used by the fp32 fallback (slow: several real quantizations each); the
default run checks the tuning record through test_variants' tiny bundle.)"""

import shutil

import numpy as np
import pytest

from st_runtime import SentenceTransformer, corpus

pytestmark = [pytest.mark.torch, pytest.mark.slow]


def _keeper(export_bundle, tmp_path, monkeypatch, scores, gate_passes):
    """A gatekeeper over a copy of the tiny fp32 bundle whose measurements are faked: the selection split scores a
    build by ``scores(settings)``, the gate split passes it when ``gate_passes(settings, n_gate_calls)``."""
    from st_runtime.export import gates, variants
    from st_runtime.export.onnx_variants import BuildContext

    root = tmp_path / "bundle"
    shutil.copytree(export_bundle("bert-mean"), root)
    manifest = SentenceTransformer(root).manifest
    ctx = BuildContext(root=root, manifest=manifest, calibration=corpus.queries(16, seed=3, split="calibration"),
                       model_type="bert")
    measured = []

    def reference(st, split="gate", user_tasks=()):
        return gates.HeldOut([], [], np.zeros((0, 1)), np.zeros((0, 1)), split)

    def measure(held, bundle_dir, variant):
        settings = dict(ctx.manifest.variants[variant].settings)
        measured.append((held.split, settings))
        if held.split == "selection":
            value = scores(settings)
        else:
            value = 1.0 if gate_passes(settings, sum(s == "gate" for s, _ in measured)) else 0.5
        return {"mean_cosine": value, "top10_overlap": value, "ndcg10_retention": value, "split": held.split}

    monkeypatch.setattr(gates, "embedding_reference", reference)
    monkeypatch.setattr(gates, "measure_embedding_variant", measure)
    return variants._Gatekeeper(None, "sentence-transformer", ctx, lambda _: None), measured


def test_calibration_method_is_chosen_on_the_selection_split(export_bundle, tmp_path, monkeypatch):
    best = {"MinMax": 0.95, "Percentile": 0.99, "Entropy": 0.97}
    keeper, measured = _keeper(export_bundle, tmp_path, monkeypatch,
                               lambda s: best[s["calibration_method"]], lambda s, n: True)
    spec, _ = keeper.build("onnx-int8-static", force=False)
    assert spec.settings["calibration_method"] == "Percentile"
    tuned = spec.settings["tuned"]
    assert tuned["chosen"] == {"calibration_method": "Percentile"} and tuned["measured_on"] == "selection split"
    assert [t["calibration_method"] for t in tuned["trials"]] == ["MinMax", "Percentile", "Entropy"]
    assert tuned["trials"][1]["score"] == pytest.approx(3 * 0.99)
    # every choice on the selection split; the gate split is looked at once, at the end, on the chosen build
    assert [split for split, _ in measured] == ["selection"] * 3 + ["gate"]
    assert measured[-1][1]["calibration_method"] == "Percentile"
    assert (tmp_path / "bundle" / spec.file).is_file()


def test_the_fp32_fallback_keeps_the_chosen_calibration_method(export_bundle, tmp_path, monkeypatch):
    """The first gate look fails, so the fallback runs: each of its builds uses the method the tuning chose."""
    best = {"MinMax": 0.95, "Percentile": 0.96, "Entropy": 0.999}
    keeper, measured = _keeper(export_bundle, tmp_path, monkeypatch,
                               lambda s: 1.0 if s["fp32_nodes"] else best[s["calibration_method"]],
                               lambda s, n: n > 1)
    spec, _ = keeper.build("onnx-int8-static", force=False)
    fallback = [s for split, s in measured if s["fp32_nodes"]]
    assert fallback and {s["calibration_method"] for s in fallback} == {"Entropy"}
    assert spec.settings["fp32_nodes"] and spec.settings["calibration_method"] == "Entropy"
    assert spec.settings["tuned"]["chosen"] == {"calibration_method": "Entropy"} and spec.accuracy["passed"]


def test_smooth_quant_alpha_is_chosen_on_the_selection_split(export_bundle, tmp_path, monkeypatch):
    pytest.importorskip("nncf")
    from st_runtime.export.openvino_variants import SMOOTH_QUANT_ALPHAS

    keeper, measured = _keeper(export_bundle, tmp_path, monkeypatch,
                               lambda s: 0.99 if s["smooth_quant_alpha"] == 0.75 else 0.97, lambda s, n: True)
    spec, _ = keeper.build("openvino-int8", force=False)
    assert spec.settings["smooth_quant_alpha"] == 0.75
    assert [t["smooth_quant_alpha"] for t in spec.settings["tuned"]["trials"]] == list(SMOOTH_QUANT_ALPHAS)
    assert [split for split, _ in measured] == ["selection"] * len(SMOOTH_QUANT_ALPHAS) + ["gate"]
