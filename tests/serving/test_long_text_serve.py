"""`st-runtime serve --long-text chunk`: long inputs embedded whole (windows pooled), as encode(long_text="chunk")."""

import httpx
import numpy as np

from st_runtime import SentenceTransformer, corpus

LONG = corpus.passages(2, seed=41, min_words=400, max_words=600)
SHORT = corpus.queries(3, seed=42)


def test_server_wide_chunking(export_bundle, start_server):
    from st_runtime.cli import build_parser
    from st_runtime.serving.cli import load_models

    bundle = export_bundle("bert-prompts")  # "query: " prompt: every window must repeat it
    args = build_parser().parse_args(["serve", f"m={bundle}", "--long-text", "chunk", "--chunk-stride", "50"])
    models = load_models(args)
    assert models["m"].config.long_text == "chunk" and models["m"].config.chunk_stride == 50
    ref = SentenceTransformer(bundle)
    texts = [SHORT[0], LONG[0], SHORT[1], LONG[1]]
    srv = start_server(models)
    with httpx.Client(base_url=srv.url, timeout=60) as client:
        for prompt_name in (None, "query"):
            body = {"inputs": texts, "truncate": False, **({"prompt_name": prompt_name} if prompt_name else {})}
            got = np.asarray(client.post("/embed", json={**body, "normalize": False}).json(), dtype=np.float32)
            want = ref.encode(texts, prompt_name=prompt_name, long_text="chunk", chunk_stride=50)
            assert np.abs(got - want).max() <= 1e-5, prompt_name
            assert np.abs(got[1] - ref.encode(texts[1], prompt_name=prompt_name)).max() > 1e-3  # not truncated
        data = client.post("/v1/embeddings", json={"input": LONG[0], "model": "m"}).json()["data"]
        assert np.abs(np.asarray(data[0]["embedding"]) - ref.encode(
            LONG[0], long_text="chunk", chunk_stride=50)).max() <= 1e-5
    plain = load_models(build_parser().parse_args(["serve", f"m={bundle}"]))
    assert plain["m"].config.long_text == "truncate"
