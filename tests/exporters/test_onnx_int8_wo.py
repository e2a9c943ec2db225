"""onnx-int8-wo: MatMulNBits 8-bit weights and int8 embedding rows, activations fp32 (batch-independent)."""

import shutil

import numpy as np
import pytest

from st_runtime import SentenceTransformer, corpus
from st_runtime.config import DEFAULT_BATCH_TOKENS, SMALL_BATCH_TOKENS

pytestmark = pytest.mark.torch
TEXTS = corpus.queries(6, seed=91) + corpus.passages(6, seed=92)


def test_int8_wo_quantizes_matmuls_and_tables_and_runs(export_bundle, tmp_path):
    import onnx

    from st_runtime.export import onnx_weight_only
    from st_runtime.export.bundle_steps import finish_manifest
    from st_runtime.export.onnx_variants import BuildContext
    from st_runtime.manifest import Manifest

    root = tmp_path / "b"
    shutil.copytree(export_bundle("bert-mean"), root)
    ctx = BuildContext(root=root, manifest=Manifest.read(root))
    spec = onnx_weight_only.build_onnx_int8_wo(ctx)
    assert spec.precision == "int8" and spec.settings["deterministic"] is True
    assert any("word_embeddings" in name for name in spec.settings["int8_tables"])
    graph = onnx.load(str(root / spec.file)).graph
    weights = {i.name for i in graph.initializer}
    ops = [n.op_type for n in graph.node]
    assert "MatMulNBits" in ops and not [n for n in graph.node if n.op_type == "MatMul" and n.input[1] in weights]
    tables = [i for i in graph.initializer if "word_embeddings" in i.name]
    assert {i.data_type for i in tables if i.dims[-1] > 1} == {onnx.TensorProto.INT8}  # only the row scales are fp32
    ctx.manifest.variants["onnx-int8-wo"] = spec
    finish_manifest(root, ctx.manifest)
    fp32 = sum(p.stat().st_size for p in root.glob("model.onnx*"))
    assert (root / spec.file).stat().st_size < 0.5 * fp32
    model = SentenceTransformer(root, variant="onnx-int8-wo")
    # a size variant records a smaller token budget, which its model then runs with by default
    assert spec.settings["max_batch_tokens"] == SMALL_BATCH_TOKENS == model.config.max_batch_tokens
    assert SentenceTransformer(root).config.max_batch_tokens == DEFAULT_BATCH_TOKENS != SMALL_BATCH_TOKENS
    ours, exact = model.encode(TEXTS), SentenceTransformer(root).encode(TEXTS)
    assert np.isfinite(ours).all() and ((ours * exact).sum(1)).min() > 0.99  # normalized model: dot = cosine
    alone = np.stack([model.encode([t])[0] for t in TEXTS[:4]])
    assert np.abs(alone - ours[:4]).max() <= 1e-5  # fp32 activations: a text's vector does not depend on its batch


def test_int8_wo_keeps_excluded_matmuls_fp32(export_bundle, tmp_path):
    import onnx

    from st_runtime.export.calibration import weight_matmuls
    from st_runtime.export.onnx_variants import BuildContext
    from st_runtime.export.onnx_weight_only import build_onnx_int8_wo
    from st_runtime.manifest import Manifest

    root = tmp_path / "b"
    shutil.copytree(export_bundle("bert-mean"), root)
    ctx = BuildContext(root=root, manifest=Manifest.read(root))
    keep = weight_matmuls(ctx.fp32)[:2]
    spec = build_onnx_int8_wo(ctx, keep)
    names = {n.name for n in onnx.load(str(root / spec.file)).graph.node if n.op_type == "MatMul"}
    assert set(keep) <= names and spec.settings["fp32_nodes"] == keep
