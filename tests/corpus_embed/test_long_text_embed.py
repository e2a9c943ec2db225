"""`st-runtime embed --long-text chunk`: every chunk of the file runs with the chunking configuration."""

import json

import numpy as np

from st_runtime import SentenceTransformer, corpus
from st_runtime.cli import main

TEXTS = corpus.queries(5, seed=51) + corpus.passages(3, seed=52, min_words=300, max_words=500)


def test_embed_with_chunking_matches_encode(export_bundle, tmp_path):
    bundle = export_bundle("bert-mean")
    source = tmp_path / "corpus.txt"
    source.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    out = tmp_path / "out.npy"
    assert main(["embed", str(bundle), str(source), str(out), "--long-text", "chunk", "--chunk-stride", "60",
                 "--chunk-pooling", "weighted", "--chunk-size", "3"]) == 0
    model = SentenceTransformer(bundle)
    want = model.encode(TEXTS, long_text="chunk", chunk_stride=60, chunk_pooling="weighted")
    assert np.abs(np.load(out) - want).max() <= 1e-6
    assert np.abs(np.load(out)[5:] - model.encode(TEXTS[5:])).max() > 1e-3
    stored = json.loads((tmp_path / "out.npy.config.json").read_text())
    assert (stored["long_text"], stored["chunk_stride"], stored["chunk_pooling"]) == ("chunk", 60, "weighted")
