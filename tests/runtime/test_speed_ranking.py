"""variant='auto' ranks by speeds measured on this machine (st-runtime bench --rank) when it has them."""

import json

import pytest

from st_runtime import SentenceTransformer, loading, speed_ranking
from st_runtime.cli import main
from st_runtime.manifest import EmbeddingSpec, Manifest, TokenizerSpec, VariantSpec

DYNAMIC = "onnx-int8-dynamic"


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ST_RUNTIME_CACHE_DIR", str(tmp_path / "cache"))


def _manifest() -> Manifest:
    int8 = VariantSpec(file="q.onnx", precision="int8", settings={"auto_rank": 4, "deterministic": True},
                       accuracy={"passed": True, "ndcg10_retention": 0.999, "top10_overlap": 0.96})
    opt = VariantSpec(file="opt.onnx", settings={"auto_rank": 2, "exact": True},
                      accuracy={"passed": True, "ndcg10_retention": 1.0, "top10_overlap": 1.0})
    return Manifest(kind="sentence-transformer", tokenizer=TokenizerSpec(), default_variant="onnx", files={},
                    variants={"onnx": VariantSpec(file="model.onnx", settings={"auto_rank": 1}), "onnx-opt": opt,
                              "onnx-int8-static": int8}, embedding=EmbeddingSpec(dimension=8))


def test_measured_speeds_outrank_auto_rank(monkeypatch):
    monkeypatch.setattr(loading, "is_installed", lambda fmt: True)
    manifest = _manifest()
    assert loading.auto_choice(manifest, "cpu").name == "onnx-int8-static"  # by auto_rank
    measured = {"onnx": 100.0, "onnx-opt": 180.0, "onnx-int8-static": 150.0}
    choice = loading.auto_choice(manifest, "cpu", measured=measured)
    assert choice.name == "onnx-opt" and choice.figures["texts_per_s"] == 180.0
    assert "measured 150 vs 180 texts/s" in choice.skipped["onnx-int8-static"]
    # quality still comes first: a measured-fast variant that failed its gate is not picked
    manifest.variants["onnx-opt"].accuracy["passed"] = False
    assert loading.auto_choice(manifest, "cpu", measured=measured).name == "onnx-int8-static"


def test_a_partial_measurement_is_not_used(monkeypatch):
    monkeypatch.setattr(loading, "is_installed", lambda fmt: True)
    choice = loading.auto_choice(_manifest(), "cpu", measured={"onnx": 500.0, "onnx-opt": 1.0})
    assert choice.name == "onnx-int8-static" and "auto_rank" in choice.skipped["onnx-opt"]


def test_store_and_load_are_keyed_by_manifest_and_machine(export_bundle, tmp_path, monkeypatch):
    import shutil

    bundle = tmp_path / "b"
    shutil.copytree(export_bundle("bert-mean", (DYNAMIC,)), bundle)
    assert speed_ranking.load_ranking(bundle) is None
    speed_ranking.store_ranking(bundle, {"onnx": 10.0, DYNAMIC: 20.0})
    assert speed_ranking.load_ranking(bundle)["texts_per_s"] == {"onnx": 10.0, DYNAMIC: 20.0}
    other_machine = speed_ranking.machine_key()
    monkeypatch.setattr(speed_ranking, "usable_cpus", lambda: 97)
    assert speed_ranking.machine_key() != other_machine and speed_ranking.load_ranking(bundle) is None
    monkeypatch.undo()
    monkeypatch.setenv("ST_RUNTIME_CACHE_DIR", str(tmp_path / "cache"))
    manifest = bundle / "st_runtime.json"
    manifest.write_text(manifest.read_text() + " ")  # another manifest: another bundle
    assert speed_ranking.load_ranking(bundle) is None


def test_bench_rank_measures_and_auto_follows(export_bundle, capsys):
    bundle = export_bundle("bert-mean", (DYNAMIC,))
    assert main(["bench", str(bundle), "--rank", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert f"[rank] {DYNAMIC}:" in out and "[rank] onnx:" in out and "fastest here" in out
    stored = speed_ranking.load_ranking(bundle)
    assert set(stored["texts_per_s"]) == {"onnx", DYNAMIC} and all(v > 0 for v in stored["texts_per_s"].values())
    # whatever was measured, auto follows it; force the order both ways to see it obey
    for fast, slow in (("onnx", DYNAMIC), (DYNAMIC, "onnx")):
        speed_ranking.store_ranking(bundle, {fast: 200.0, slow: 100.0})
        assert SentenceTransformer(bundle, variant="auto", allow_batch_dependent=True).variant == fast
    assert main(["info", str(bundle), "--no-verify", "--allow-batch-dependent"]) == 0
    info = capsys.readouterr().out
    assert "ranked by speed measured here" in info and f"picks {DYNAMIC} " in info
    assert json.loads(speed_ranking.ranking_path(bundle).read_text())["cpu"]
