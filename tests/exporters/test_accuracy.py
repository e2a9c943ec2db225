"""Task-based gates: the built-in retrieval task scored like the evaluator, the user's data gating an export,
calibration overlap refused, the fp32 fallback choosing on the selection split, and auto's floors end to end."""

import json

import numpy as np
import pytest

from st_runtime import SentenceTransformer, corpus
from st_runtime.evaluation import InformationRetrievalEvaluator

pytestmark = pytest.mark.torch
DYNAMIC = ("onnx-int8-dynamic",)


@pytest.fixture(scope="module")
def dynamic_bundle(export_bundle):
    return export_bundle("bert-mean", DYNAMIC)


def _user_ir(tmp_path, n=30):
    """Retrieval data a tiny random model ranks well (queries are 10-word slices of their documents), so its
    NDCG@10 is far from 0 and the retention ratio is well conditioned."""
    _, documents, _ = corpus.retrieval_task("selection", n, 2 * n, seed=7)
    queries = {f"q{i}": " ".join(doc.split()[5:15]) for i, doc in enumerate(list(documents.values())[:n])}
    qrels = {f"q{i}": {cid} for i, cid in enumerate(list(documents)[:n])}
    paths = tmp_path / "queries.jsonl", tmp_path / "corpus.jsonl", tmp_path / "qrels.tsv"
    paths[0].write_text("".join(json.dumps({"_id": k, "text": v}) + "\n" for k, v in queries.items()))
    paths[1].write_text("".join(json.dumps({"_id": k, "text": v}) + "\n" for k, v in documents.items()))
    paths[2].write_text("".join(f"{q}\t{c}\t1\n" for q, cs in qrels.items() for c in cs))
    return [str(p) for p in paths], queries


def test_task_metric_equals_the_evaluators(dynamic_bundle, model_path):
    """Recorded figures = st_runtime's InformationRetrievalEvaluator on the variant, and = sentence-transformers'
    own evaluator on the torch model."""
    from sentence_transformers import SentenceTransformer as TorchST
    from sentence_transformers.evaluation import InformationRetrievalEvaluator as TorchIR

    from st_runtime.export.tasks import TASK_SIZES

    spec = SentenceTransformer(dynamic_bundle).manifest.variants["onnx-int8-dynamic"]
    recorded = spec.accuracy["tasks"]["ndcg10_retention"]
    task = corpus.retrieval_task("gate", *TASK_SIZES["gate"])
    ours = InformationRetrievalEvaluator(*task, write_csv=False)(
        SentenceTransformer(dynamic_bundle, variant="onnx-int8-dynamic"))
    for metric in ("ndcg@10", "mrr@10", "recall@10"):
        assert recorded["variant"][metric] == pytest.approx(ours[f"cosine_{metric}"], abs=1e-12)
    torch_scores = TorchIR(*task, write_csv=False)(TorchST(str(model_path("bert-mean")), device="cpu"))
    for metric in ("ndcg@10", "mrr@10", "recall@10"):
        assert recorded["torch_fp32"][metric] == pytest.approx(torch_scores[f"cosine_{metric}"], abs=1e-6)
        assert recorded["retention"][metric] == pytest.approx(
            recorded["variant"][metric] / recorded["torch_fp32"][metric])
    assert spec.accuracy["ndcg10_retention"] == recorded["retention"]["ndcg@10"]
    assert spec.accuracy["gate"]["ndcg10_retention"] == 0.995
    assert recorded["queries"] == 250 and spec.accuracy["split"] == "gate"


def test_cross_encoder_gate_reranks_the_task(export_bundle):
    from st_runtime import CrossEncoder

    manifest = CrossEncoder(export_bundle("ce-bert", DYNAMIC)).manifest
    spec = manifest.variants.get("onnx-int8-dynamic")
    figures, gate = ((spec.accuracy, spec.accuracy["gate"]) if spec else
                     (manifest.parity["refused_variants"]["onnx-int8-dynamic"][k] for k in ("figures", "gate")))
    task = figures["tasks"]["ndcg10_retention"]
    assert task["kind"] == "rerank" and task["depth"] == 10 and task["queries"] == 60
    assert gate["ndcg10_retention"] == 0.995 and np.isfinite(figures["ndcg10_retention"])
    assert task["torch_fp32"]["ndcg@10"] > 0


def test_eval_ir_and_sts_gate_an_export_and_are_recorded(model_path, tmp_path):
    from st_runtime.cli import main

    ir, _ = _user_ir(tmp_path)
    sts = tmp_path / "sts.tsv"
    s1, other = corpus.queries(30, seed=5, split="selection"), corpus.queries(30, seed=6, split="selection")
    # same text (5), half the words shared (2), unrelated (0): a ranking a tiny random model gets mostly right
    s2 = [a if i % 3 == 0 else " ".join(a.split()[:4] + b.split()[4:]) if i % 3 == 1 else b
          for i, (a, b) in enumerate(zip(s1, other))]
    sts.write_text("".join(f"{a}\t{b}\t{(5, 2, 0)[i % 3]}\n" for i, (a, b) in enumerate(zip(s1, s2))))
    out = tmp_path / "b"
    assert main(["export", str(model_path("bert-mean")), str(out), "--variants", "onnx-int8-dynamic",
                 "--eval-ir", *ir, "--eval-sts", str(sts)]) == 0
    manifest = SentenceTransformer(out).manifest
    acc = manifest.variants["onnx-int8-dynamic"].accuracy
    assert acc["gate"]["user_retention"] == 0.995 and acc["passed"]
    assert acc["user_retention"] == min(acc["tasks"]["user:ir"]["retention"]["ndcg@10"],
                                        acc["tasks"]["user:sts"]["retention"]["spearman"])
    assert acc["tasks"]["user:ir"]["queries"] == 30 and acc["tasks"]["user:sts"]["pairs"] == 30
    assert len(manifest.parity["splits"]["user_tasks"]) == 2


def test_eval_ir_refuses_a_variant_that_loses_on_the_users_task(model_path, tmp_path, monkeypatch):
    """Built-in figures pass; only the user's task shows the loss, and the variant is refused for it."""
    from st_runtime.export import tasks
    from st_runtime.export.export import export_model

    ir, _ = _user_ir(tmp_path)
    real_scores = tasks.Task.scores

    def worse_on_users_task(self, model):
        scores = real_scores(self, model)
        if self.name.startswith("user") and not isinstance(model, tasks.TorchAsRuntime):
            scores = {k: v * 0.98 for k, v in scores.items()}
        return scores

    monkeypatch.setattr(tasks.Task, "scores", worse_on_users_task)
    monkeypatch.setattr("st_runtime.export.variants.FALLBACK", set())  # refuse at once
    out = export_model(str(model_path("bert-mean")), tmp_path / "b", variants=DYNAMIC,
                       eval_tasks=[tasks.user_ir_task(*ir)])
    manifest = SentenceTransformer(out).manifest
    assert "onnx-int8-dynamic" not in manifest.variants
    figures = manifest.parity["refused_variants"]["onnx-int8-dynamic"]["figures"]
    assert figures["user_retention"] == pytest.approx(0.98) and figures["ndcg10_retention"] >= 0.995


@pytest.mark.parametrize("leak", ["user", "gate"])
def test_calibration_overlapping_the_evaluation_texts_is_refused(model_path, tmp_path, capsys, leak):
    from st_runtime.cli import main

    ir, queries = _user_ir(tmp_path)
    leaked = list(queries.values())[3] if leak == "user" else corpus.split_sentences("gate")[10]
    calibration = tmp_path / "calibration.txt"
    calibration.write_text("\n".join(corpus.queries(20, seed=9, split="calibration") + [leaked]) + "\n")
    out = tmp_path / "b"
    assert main(["export", str(model_path("bert-mean")), str(out), "--variants", "onnx-int8-static",
                 "--calibration", str(calibration), "--eval-ir", *ir]) == 2
    err = capsys.readouterr().err
    assert "1 of 21 calibration texts overlap" in err
    assert ("user IR" if leak == "user" else "built-in gate split") in err
    assert not out.exists()


def test_fallback_chooses_layers_on_the_selection_split_only(model_path, tmp_path, monkeypatch):
    from st_runtime.export import gates
    from st_runtime.export.export import export_model

    splits = []

    def fake_measure(held, bundle_dir, variant):
        splits.append(held.split)
        return {"mean_cosine": 0.5, "top10_overlap": 0.5, "ndcg10_retention": 0.5, "split": held.split}

    monkeypatch.setattr(gates, "measure_embedding_variant", fake_measure)
    out = export_model(str(model_path("bert-mean")), tmp_path / "b", variants=DYNAMIC, force=True)
    assert splits[0] == "gate" and splits[-1] == "gate"  # first look, and the reported figures
    assert set(splits[1:-1]) == {"selection"} and len(splits) > 4
    manifest = SentenceTransformer(out).manifest
    assert manifest.variants["onnx-int8-dynamic"].settings["forced"] is True
    roles = manifest.parity["fp32_fallback_sensitivity"]["onnx-int8-dynamic"]
    assert len(roles) == len(splits) - 2 - (len(roles) - 1)  # one sensitivity trial per role, then the additions
    assert any(".*" in role for role in roles)  # roles group a MatMul across layers


def test_auto_floors_reach_the_model_and_info_explains(dynamic_bundle, capsys):
    from st_runtime.cli import main

    assert SentenceTransformer(dynamic_bundle, variant="auto").variant == "onnx"  # dynamic int8 is batch-dependent
    allowed = SentenceTransformer(dynamic_bundle, variant="auto", allow_batch_dependent=True)
    assert allowed.variant == "onnx-int8-dynamic"
    floor = SentenceTransformer(dynamic_bundle, variant="auto", allow_batch_dependent=True, min_top10=0.99999)
    assert floor.variant == "onnx"
    assert main(["info", str(dynamic_bundle)]) == 0
    out = capsys.readouterr().out
    assert "picks onnx" in out and "not onnx-int8-dynamic: its vectors depend on the other texts" in out


def test_with_margin_tightens_every_bound():
    from st_runtime.export import gates

    tight = gates.with_margin({"mean_cosine": 0.99, "top10_overlap": 0.995, "ndcg10_retention": 0.995,
                               "max_abs": 1e-5})
    assert tight == pytest.approx({"mean_cosine": 0.991, "top10_overlap": 1.0, "ndcg10_retention": 0.997,
                                   "max_abs": 5e-6})


def test_fallback_does_not_stop_on_a_bare_pass_of_the_selection_split(model_path, tmp_path, monkeypatch):
    """A fallback step that only just meets the gate on the selection split is not enough: one more role goes fp32."""
    from st_runtime.export import gates
    from st_runtime.export.calibration import roles, weight_matmuls
    from st_runtime.export.export import export_model

    calls, n_roles = [], []
    bare = dict(gates.DEFAULT_GATES["int8"])  # exactly the gate: passes it, misses it with the margin
    comfortable = {k: min(1.0, v + 0.02) for k, v in bare.items()}
    failing = {k: v - 0.1 for k, v in bare.items()}

    def fake_measure(held, bundle_dir, variant):
        if not n_roles:
            n_roles.append(len(roles(weight_matmuls(bundle_dir / "model.onnx"))))
        calls.append(held.split)
        selection_calls = calls.count("selection")
        if held.split == "gate":
            return dict(comfortable) if len(calls) > 1 else dict(failing)
        if selection_calls <= n_roles[0]:  # sensitivity: one trial per role
            return dict(failing)
        return dict(bare) if selection_calls == n_roles[0] + 1 else dict(comfortable)

    monkeypatch.setattr(gates, "measure_embedding_variant", fake_measure)
    out = export_model(str(model_path("bert-mean")), tmp_path / "b", variants=DYNAMIC)
    assert n_roles[0] >= 3
    assert calls.count("selection") == n_roles[0] + 2  # the bare pass did not stop it; the next step did
    manifest = SentenceTransformer(out).manifest
    assert manifest.variants["onnx-int8-dynamic"].accuracy["passed"] is True
    assert manifest.parity["fp32_fallback_margin"]["selection_split_must_clear"]["top10_overlap"] == 0.01
    seconds = manifest.parity["export_seconds"]["onnx-int8-dynamic"]  # where the variant's time went
    assert set(seconds) == {"total", "build", "measure", "fallback"}
    assert 0 < seconds["fallback"] <= seconds["total"] and seconds["build"] + seconds["measure"] == \
        pytest.approx(seconds["total"], abs=0.02)
