"""StaticEmbedding models run in numpy from their safetensors table (no graph) and equal sentence-transformers."""

import numpy as np
import pytest

from st_runtime import ExportError, SentenceTransformer, corpus

STATIC = ["static-normalize", "static-plain"]
ATOL = 1e-5
TEXTS = (corpus.queries(12, seed=301) + corpus.passages(6, seed=302)
         + corpus.passages(2, seed=303, min_words=1500, max_words=1600) + ["", "x", "[CLS] [SEP] [PAD]"])


@pytest.mark.parametrize("name", STATIC)
def test_static_parity(name, export_bundle, model_path):
    from sentence_transformers import SentenceTransformer as TorchST

    ref = TorchST(str(model_path(name)), device="cpu")
    ours = SentenceTransformer(export_bundle(name))
    assert ours.variant == "static" and ours.manifest.variants["static"].format == "static-embedding"
    assert ours.get_embedding_dimension() == ref.get_embedding_dimension()
    for batch_size in (1, 7, 32):
        got = ours.encode(TEXTS, batch_size=batch_size)
        assert got.dtype == np.float32
        diff = np.abs(ref.encode(TEXTS, batch_size=batch_size) - got).max()
        assert diff <= ATOL, f"{name} batch_size={batch_size}: {diff:.3g}"
    for kwargs in ({"normalize_embeddings": True}, {"truncate_dim": 16}, {"prompt": "Represent this: "},
                   *({"prompt_name": p} for p in ours.prompts)):
        assert np.abs(ref.encode(TEXTS, **kwargs) - ours.encode(TEXTS, **kwargs)).max() <= ATOL, kwargs
    assert np.abs(ref.encode_query(TEXTS) - ours.encode_query(TEXTS)).max() <= ATOL
    assert np.all(ours.encode("") == 0)  # an empty bag is the zero vector, as torch's EmbeddingBag gives


def test_static_refuses_variants(model_path, tmp_path):
    from st_runtime.export.export import export_model

    with pytest.raises(ExportError, match="no graph"):
        export_model(str(model_path("static-plain")), tmp_path / "b", variants=["openvino"])
    assert not (tmp_path / "b").exists()
