"""Per architecture: ONNX Runtime's fusions on the fp32 graph (exact) and the dynamic int8 variant's gate.

Slow (an int8 gate per architecture); the default run covers bert-mean in test_variants.py. Its outcomes feed the
README's coverage matrix (benchmarks/coverage_matrix.py, $ST_RUNTIME_COVERAGE_RESULTS).
"""

import numpy as np
import pytest

from st_runtime import SentenceTransformer, corpus

ARCHITECTURES = ["minilm-real", "mpnet-mean", "distilbert-cls", "xlmr-mean", "deberta-mean", "t5-mean-dense",
                 "modernbert-mean", "qwen3-lasttoken", "bert-long"]
TEXTS = corpus.queries(10, seed=61) + corpus.passages(4, seed=62)


@pytest.mark.slow
@pytest.mark.parametrize("name", ARCHITECTURES)
def test_fusions_and_int8_gate(name, export_bundle, coverage):
    bundle = export_bundle(name, ("onnx-opt", "onnx-int8-dynamic"))
    manifest = SentenceTransformer(bundle).manifest
    assert "onnx-opt" in manifest.variants, manifest.parity.get("refused_variants")
    fused = manifest.variants["onnx-opt"].settings.get("fused_ops") or {}
    coverage(name, "fusions", ", ".join(sorted(fused)) or "none")
    base = SentenceTransformer(bundle).encode(TEXTS)
    assert np.abs(SentenceTransformer(bundle, variant="onnx-opt").encode(TEXTS) - base).max() <= 1e-5
    from st_runtime.export.gates import passes

    if "onnx-int8-dynamic" in manifest.variants:
        assert manifest.variants["onnx-int8-dynamic"].accuracy["passed"] is True
        coverage(name, "int8_gate", "yes (onnx-int8-dynamic)")
    else:  # refused for its figures, not by accident: the cell says which figure missed
        refused = manifest.parity["refused_variants"]["onnx-int8-dynamic"]
        assert not passes(refused["figures"], refused["gate"])
        missed = [f"{k} {refused['figures'].get(k, float('nan')):.3g} vs {v}" for k, v in refused["gate"].items()
                  if not passes(refused["figures"], {k: v})]
        coverage(name, "int8_gate", "refused: " + ", ".join(missed))
