"""variant='auto' obeys quality: gate-passing, unforced, batch-independent unless allowed, above the floors."""

import logging

import pytest

from st_runtime import loading
from st_runtime.errors import BackendUnavailableError
from st_runtime.manifest import EmbeddingSpec, Manifest, TokenizerSpec, VariantSpec

ISA = "avx2"


def _int8(rank, passed=True, retention=0.999, top10=0.96, deterministic=True, forced=False):
    settings = {"auto_rank": rank, "isa": ISA, "deterministic": deterministic}
    if forced:
        settings["forced"] = True
    return VariantSpec(file=f"m{rank}.onnx", precision="int8", settings=settings,
                       accuracy={"passed": passed, "ndcg10_retention": retention, "top10_overlap": top10})


def _manifest(**variants) -> Manifest:
    base = {
        "onnx": VariantSpec(file="model.onnx", settings={"auto_rank": 1},
                            accuracy={"max_abs": 1e-7, "mean_cosine": 1.0}),
        "onnx-opt": VariantSpec(file="opt.onnx", settings={"auto_rank": 2, "exact": True},
                                accuracy={"passed": True, "ndcg10_retention": 1.0, "top10_overlap": 1.0}),
    }
    base.update(variants)
    return Manifest(kind="sentence-transformer", tokenizer=TokenizerSpec(), variants=base, default_variant="onnx",
                    files={}, embedding=EmbeddingSpec(dimension=8))


@pytest.fixture(autouse=True)
def _this_cpu(monkeypatch):
    monkeypatch.setattr(loading, "is_installed", lambda fmt: True)
    monkeypatch.setattr(loading, "int8_isa", lambda: ISA)
    monkeypatch.setattr(loading, "cpu_flags", lambda: frozenset({"avx2"}))


def test_auto_takes_the_fastest_gate_passing_variant():
    choice = loading.auto_choice(_manifest(**{"openvino-int8": _int8(4)}), "cpu")
    assert choice.name == "openvino-int8"
    assert choice.figures == {"retention": 0.999, "top10_overlap": 0.96}
    assert "slower here" in choice.skipped["onnx-opt"]


def test_auto_skips_forced_and_failed_variants():
    manifest = _manifest(**{"openvino-int8": _int8(4, passed=False, forced=True),
                            "onnx-int8-static": _int8(3, passed=False)})
    choice = loading.auto_choice(manifest, "cpu")
    assert choice.name == "onnx-opt"
    assert "--force" in choice.skipped["openvino-int8"]
    assert "did not pass" in choice.skipped["onnx-int8-static"]


def test_auto_skips_batch_dependent_variants_unless_allowed():
    manifest = _manifest(**{"onnx-int8-dynamic": _int8(3, deterministic=False)})
    choice = loading.auto_choice(manifest, "cpu")
    assert choice.name == "onnx-opt" and "batch" in choice.skipped["onnx-int8-dynamic"]
    allowed = loading.auto_choice(manifest, "cpu", loading.AutoPolicy(allow_batch_dependent=True))
    assert allowed.name == "onnx-int8-dynamic"


@pytest.mark.parametrize("policy, expected", [
    (loading.AutoPolicy(min_retention=0.995), "onnx-int8-static"),   # openvino-int8 keeps 0.990
    (loading.AutoPolicy(min_retention=0.9999), "onnx-opt"),          # only the exact graphs keep 1.0
    (loading.AutoPolicy(min_top10=0.95), "onnx-int8-static"),        # openvino-int8 has 0.93
    (loading.AutoPolicy(min_top10=0.99), "onnx-opt"),
    (loading.AutoPolicy(), "openvino-int8"),
])
def test_auto_honours_floors(policy, expected):
    manifest = _manifest(**{"openvino-int8": _int8(4, retention=0.990, top10=0.93),
                            "onnx-int8-static": _int8(3, retention=0.997, top10=0.955)})
    assert loading.auto_choice(manifest, "cpu", policy).name == expected


def test_a_floor_skips_variants_without_the_figure():
    old = _int8(4)
    old.accuracy = {"passed": True, "top10_overlap": 0.97}  # exported before task retention was recorded
    choice = loading.auto_choice(_manifest(**{"openvino-int8": old}), "cpu", loading.AutoPolicy(min_retention=0.99))
    assert choice.name == "onnx-opt" and "no retention recorded" in choice.skipped["openvino-int8"]


def test_user_task_retention_counts_towards_the_floor():
    variant = _int8(4, retention=0.999)
    variant.accuracy["user_retention"] = 0.98
    manifest = _manifest(**{"openvino-int8": variant})
    assert loading.auto_choice(manifest, "cpu", loading.AutoPolicy(min_retention=0.995)).name == "onnx-opt"


def test_int8_for_another_isa_is_not_picked(monkeypatch):
    manifest = _manifest(**{"openvino-int8": _int8(4)})
    monkeypatch.setattr(loading, "int8_isa", lambda: "avx512_vnni")
    choice = loading.auto_choice(manifest, "cpu")
    assert choice.name == "onnx-opt" and "built for avx2" in choice.skipped["openvino-int8"]


def test_nothing_left_is_a_typed_error_that_lists_why(monkeypatch):
    manifest = _manifest()
    manifest.variants.pop("onnx-opt")
    manifest.variants["onnx"].format = "openvino"
    monkeypatch.setattr(loading, "is_installed", lambda fmt: fmt != "openvino")
    with pytest.raises(BackendUnavailableError, match="onnx: openvino is not installed"):
        loading.auto_choice(manifest, "cpu")


def test_choose_variant_logs_the_choice_with_figures(caplog):
    class FakeBundle:
        manifest = _manifest(**{"openvino-int8": _int8(4)})

    with caplog.at_level(logging.INFO, logger="st_runtime.loading"):
        assert loading.choose_variant(FakeBundle(), "auto", None) == "openvino-int8"
    assert "openvino-int8 (retention 0.999, top10_overlap 0.96)" in caplog.text
