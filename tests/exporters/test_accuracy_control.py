"""--max-drop: arguments checked before any work, NNCF's validation function, the accuracy-controlled openvino-int8
recording what NNCF reverted, and (slow) an export where the flag reaches NNCF and the variant is still gated."""

import json
import math
import shutil

import pytest

from st_runtime import InputValidationError, SentenceTransformer, corpus

pytestmark = pytest.mark.torch


@pytest.mark.parametrize("bad", [0, 1, -0.1, 1.5, math.nan, math.inf, True])
def test_max_drop_outside_the_open_unit_interval_is_refused(bad):
    from st_runtime.export.accuracy_control import check_max_drop

    with pytest.raises(InputValidationError, match="strictly between 0 and 1"):
        check_max_drop(bad, ["openvino-int8"])


def test_max_drop_with_other_variants_or_kinds_is_refused():
    from st_runtime.export.accuracy_control import check_max_drop

    check_max_drop(None, ["onnx-int8-static"])  # no flag, nothing to check
    check_max_drop(0.005, ["openvino-int8"])
    for variants in (["onnx-int8-static"], ["openvino-int8", "openvino"], []):
        with pytest.raises(InputValidationError, match="--variants openvino-int8 --max-drop 0.005"):
            check_max_drop(0.005, variants)
    with pytest.raises(InputValidationError, match="a cross-encoder has no such task"):
        check_max_drop(0.005, ["openvino-int8"], "cross-encoder")


def test_cli_refuses_max_drop_before_loading_the_model(tmp_path, capsys):
    from st_runtime.cli import main

    out = tmp_path / "b"
    assert main(["export", str(tmp_path / "not-even-a-model"), str(out), "--variants", "onnx-int8-static",
                 "--max-drop", "0.005"]) == 2
    assert "only builds openvino-int8" in capsys.readouterr().err and not out.exists()
    assert main(["export", str(tmp_path / "not-even-a-model"), str(out), "--variants", "openvino-int8",
                 "--max-drop", "5"]) == 2
    assert "strictly between 0 and 1" in capsys.readouterr().err


class _Fixed:
    """A stand-in evaluator: scores whatever model it is given by that model's ``value``."""

    def __call__(self, model):
        return {"ndcg@10": model.value}


class _Model:
    def __init__(self, value):
        self.value = value


def test_validation_fn_scores_the_whole_set_only():
    """A subset (NNCF's one-item probe) gets (None, None), so NNCF ranks layers by output change; the whole set gets
    the lowest retention of the tasks, and every such score is kept in NNCF's order."""
    from st_runtime.export.accuracy_control import AccuracyControl
    from st_runtime.export.tasks import Task

    tasks = [Task("a", "ir", _Fixed(), ("ndcg@10",), "ndcg@10", reference={"ndcg@10": 0.5}),
             Task("b", "ir", _Fixed(), ("ndcg@10",), "ndcg@10", reference={"ndcg@10": 0.4})]
    control = AccuracyControl(0.005, tasks, "test")
    validate = control.validation_fn(lambda compiled: compiled, n_items=3)
    assert validate(_Model(0.45), ["x"]) == (None, None)
    assert validate(_Model(0.45), iter(["x", "y", "z"])) == (pytest.approx(0.45 / 0.5), None)  # min(0.9, 1.125)
    assert validate(_Model(math.nan), ["x", "y", "z"]) == (0.0, None)  # fails NNCF's drop, never crashes it
    assert control.scores == [pytest.approx(0.9), 0.0]


def _sts_file(tmp_path, n=40):
    s1, other = corpus.queries(n, seed=5, split="selection"), corpus.queries(n, seed=6, split="selection")
    s2 = [a if i % 3 == 0 else " ".join(a.split()[:4] + b.split()[4:]) if i % 3 == 1 else b
          for i, (a, b) in enumerate(zip(s1, other))]
    path = tmp_path / "sts.tsv"
    path.write_text("".join(f"{a}\t{b}\t{(5, 2, 0)[i % 3]}\n" for i, (a, b) in enumerate(zip(s1, s2))))
    return str(path)


@pytest.mark.slow
def test_accuracy_control_reverts_operations_and_records_them(export_bundle, tmp_path):
    """NNCF's real accuracy control on a tiny model, on a user STS task scored by Pearson (continuous, so int8
    always costs something): a max drop no int8 graph meets makes NNCF revert operations to fp32, and the record
    says how many, with the metric before and after. (Not monotonic: NNCF steps back and forth, and with a bound it
    cannot meet it returns its last state, which measured here slightly below the all-int8 graph.)"""
    pytest.importorskip("nncf")
    import openvino as ov

    from st_runtime.export import tasks
    from st_runtime.export.accuracy_control import AccuracyControl
    from st_runtime.export.onnx_variants import BuildContext
    from st_runtime.export.openvino_variants import build_openvino_int8

    root = tmp_path / "bundle"
    shutil.copytree(export_bundle("bert-mean"), root)
    fp32 = SentenceTransformer(root)
    task = tasks.user_sts_task(_sts_file(tmp_path, 24))
    task.primary = "pearson"
    task.reference = task.scores(fp32)
    ctx = BuildContext(root=root, manifest=fp32.manifest, calibration=corpus.queries(16, seed=3, split="calibration"))
    ctx.accuracy_control = AccuracyControl(1e-9, [task], "test data")
    spec = build_openvino_int8(ctx)
    record = spec.settings["accuracy_control"]
    assert record["max_drop"] == 1e-9 and record["drop_type"] == "relative" and record["tasks"] == [task.name]
    assert record["fp32_ir"] == pytest.approx(1.0, abs=1e-4)  # the fp32 IR is torch-exact
    assert record["int8_before"] < record["fp32_ir"] and record["restorer_ran"]
    assert record["reverted_operations"] == len(record["reverted"]) > 0
    assert 0 < record["int8_after"] <= 1.0 + 1e-6
    assert record["drop"] == pytest.approx((record["fp32_ir"] - record["int8_after"]) / record["fp32_ir"])

    def fake_quantizers(xml):
        return sum(op.get_type_name() == "FakeQuantize" for op in ov.Core().read_model(str(root / xml)).get_ops())

    ctx.accuracy_control = None
    controlled = fake_quantizers(spec.file)
    plain = build_openvino_int8(ctx)
    assert "accuracy_control" not in plain.settings
    assert controlled < fake_quantizers(plain.file)  # what NNCF reverted is really gone from the graph


@pytest.mark.slow
def test_export_with_max_drop_reaches_nncf_and_is_still_gated(model_path, tmp_path, monkeypatch):
    pytest.importorskip("nncf")
    import nncf

    from st_runtime.cli import main
    from st_runtime.export import gates

    calls, splits = [], []
    real_control, real_measure = nncf.quantize_with_accuracy_control, gates.measure_embedding_variant

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_control(*args, **kwargs)

    def measure(held, bundle_dir, variant):
        splits.append((held.split, bool(calls)))
        return real_measure(held, bundle_dir, variant)

    monkeypatch.setattr(nncf, "quantize_with_accuracy_control", spy)
    monkeypatch.setattr(gates, "measure_embedding_variant", measure)
    out = tmp_path / "b"
    assert main(["export", str(model_path("bert-mean")), str(out), "--variants", "openvino-int8",
                 "--max-drop", "0.005"]) == 0
    assert len(calls) == 1 and calls[0]["max_drop"] == 0.005 and calls[0]["drop_type"] == nncf.DropType.RELATIVE
    spec = SentenceTransformer(out).manifest.variants["openvino-int8"]
    record = spec.settings["accuracy_control"]
    assert record["data"] == "built-in retrieval task, selection split" and record["validation_texts"] > 500
    assert record["drop"] <= 0.005 and record["reverted_operations"] >= 0 and "int8_after" in record
    # tuned on the selection split before; gated on the gate split after, by the normal gate
    assert splits[-1] == ("gate", True) and {s for s, _ in splits[:-1]} == {"selection"}
    assert spec.accuracy["split"] == "gate" and spec.accuracy["gate"] == gates.DEFAULT_GATES["int8"]
    assert spec.accuracy["passed"] == gates.passes(spec.accuracy, spec.accuracy["gate"])
    assert json.dumps(spec.settings["tuned"]["chosen"]) == json.dumps(
        {"smooth_quant_alpha": spec.settings["smooth_quant_alpha"]})
