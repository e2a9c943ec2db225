"""--allow-batch-dependent / --min-retention / --min-top10: every command that opens a bundle applies the same
rule as ``SentenceTransformer(path, variant="auto", ...)``."""

import json

import numpy as np
import pytest

from st_runtime import SentenceTransformer
from st_runtime.cli import main

DYNAMIC = "onnx-int8-dynamic"


@pytest.fixture(scope="module")
def bundle(export_bundle):
    out = export_bundle("bert-mean", (DYNAMIC,))
    spec = SentenceTransformer(out).manifest.variants[DYNAMIC]
    assert spec.settings.get("deterministic") is False and spec.accuracy.get("passed") is True
    return out


def _auto(bundle, **policy):
    return SentenceTransformer(bundle, variant="auto", **policy).variant


def test_the_api_rule_these_flags_mirror(bundle):
    assert _auto(bundle) == "onnx"
    assert _auto(bundle, allow_batch_dependent=True) == DYNAMIC
    assert _auto(bundle, allow_batch_dependent=True, min_top10=1.0) == "onnx"


@pytest.mark.parametrize("flags, picked", [
    ([], "onnx"),
    (["--allow-batch-dependent"], DYNAMIC),
    (["--allow-batch-dependent", "--min-top10", "1.0"], "onnx"),
])
def test_info_says_what_auto_picks_under_the_flags(bundle, capsys, flags, picked):
    assert main(["info", str(bundle), "--no-verify", *flags]) == 0
    out = capsys.readouterr().out
    assert f"picks {picked} " in out
    if picked == "onnx" and flags:
        assert f"not {DYNAMIC}: top10_overlap" in out
    elif picked == "onnx":
        assert f"not {DYNAMIC}: its vectors depend on the other texts" in out


def test_a_floor_out_of_range_is_refused(bundle, capsys):
    with pytest.raises(SystemExit):
        main(["info", str(bundle), "--min-retention", "1.5"])
    assert "between 0 and 1" in capsys.readouterr().err


def test_serve_loads_what_the_flags_allow(bundle):
    pytest.importorskip("starlette")
    from st_runtime.serving.cli import add_arguments, build_config  # noqa: F401  (the serve parser)
    from st_runtime.serving.registry import load_model
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([str(bundle), "--variant", "auto", "--allow-batch-dependent"])
    from st_runtime.auto_policy_args import auto_policy_kwargs

    assert load_model(bundle, variant=args.variant, **auto_policy_kwargs(args)).variant == DYNAMIC
    plain = parser.parse_args([str(bundle), "--variant", "auto"])
    assert load_model(bundle, variant=plain.variant, **auto_policy_kwargs(plain)).variant == "onnx"


def test_embed_runs_the_variant_the_flags_allow(bundle, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    texts = [f"sentence number {i} about a cat on a mat" for i in range(9)]
    src = tmp_path / "in.txt"
    src.write_text("\n".join(texts) + "\n")
    for flags, variant in (([], "onnx"), (["--allow-batch-dependent"], DYNAMIC)):
        out = tmp_path / f"out-{variant}.parquet"
        assert main(["embed", str(bundle), str(src), str(out), "--variant", "auto", *flags]) == 0
        table = pq.read_table(out)
        assert json.loads(table.schema.metadata[b"st_runtime.source"])["variant"] == variant
        got = np.stack(table.column("embedding").to_numpy(zero_copy_only=False))
        want = SentenceTransformer(bundle, variant=variant).encode(texts, batch_size=32)
        np.testing.assert_allclose(got, want, atol=1e-6)
