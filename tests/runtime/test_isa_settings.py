"""int8 settings chosen from the CPU in one place (st_runtime.hardware.int8_settings), with mocked flag sets."""

import pytest

from st_runtime.hardware import int8_settings

ZEN3 = frozenset({"sse4_2", "avx", "avx2", "fma", "f16c"})  # this machine: AMD EPYC Zen 3, AVX2 + FMA only


@pytest.mark.parametrize("flags,machine,isa,reduce_range,overflow_fix", [
    (ZEN3, "x86_64", "avx2", True, "first_layer_only"),
    (ZEN3 | {"avx512f", "avx512bw"}, "x86_64", "avx2", True, "first_layer_only"),  # AVX-512 without VNNI
    (ZEN3 | {"avx512f", "avx512_vnni"}, "x86_64", "avx512_vnni", False, "disable"),
    (ZEN3 | {"avx_vnni"}, "x86_64", "avx_vnni", False, "disable"),
    (frozenset({"sse4_2", "ssse3"}), "x86_64", "generic", True, "first_layer_only"),  # pmaddubsw saturates too
    (frozenset({"fp", "asimd", "asimddp", "i8mm"}), "aarch64", "arm64", False, "disable"),
    (frozenset({"fp", "asimd"}), "aarch64", "arm64", False, "disable"),  # no dot product: still 32-bit sums
])
def test_settings_follow_the_flags(flags, machine, isa, reduce_range, overflow_fix):
    got = int8_settings(flags, machine)
    assert (got["isa"], got["reduce_range"], got["overflow_fix"]) == (isa, reduce_range, overflow_fix)
    assert got["reason"].startswith(isa)


def test_overflow_fix_is_an_nncf_value():
    nncf_params = pytest.importorskip("nncf.quantization.advanced_parameters")
    for flags, machine in ((ZEN3, "x86_64"), (frozenset({"asimd"}), "aarch64")):
        nncf_params.OverflowFix(int8_settings(flags, machine)["overflow_fix"])


@pytest.mark.torch
@pytest.mark.parametrize("flags,machine,expected", [(ZEN3, "x86_64", True), (frozenset({"asimddp"}), "aarch64", False)])
def test_onnx_int8_records_what_was_chosen(export_bundle, tmp_path, monkeypatch, flags, machine, expected):
    import shutil

    from st_runtime import hardware
    from st_runtime.export import onnx_variants
    from st_runtime.manifest import Manifest

    root = tmp_path / "b"
    shutil.copytree(export_bundle("bert-mean"), root)
    monkeypatch.setattr(onnx_variants, "int8_settings", lambda: hardware.int8_settings(flags, machine))
    spec = onnx_variants.build_onnx_int8_dynamic(onnx_variants.BuildContext(root=root, manifest=Manifest.read(root)))
    assert spec.settings["reduce_range"] is expected and spec.settings["isa"] == int8_settings(flags, machine)["isa"]
    assert spec.settings["isa_reason"]
