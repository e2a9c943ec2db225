"""MultiVectorEncoder export: Transformer [+ Dense] [+ Normalize] into one graph giving per-token embeddings;
MultiVectorMask (skiplist, allowlist) and the per-task lengths are recorded in the manifest and run in numpy."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from st_runtime import corpus
from st_runtime.errors import UnsupportedModelError
from st_runtime.manifest import Manifest, MultiVectorSpec

from . import parity
from .bundle_steps import record_parity, trace_into_bundle
from .chain_graph import ChainGraph
from .routes import example_for
from .source import SourceModel
from .specs import architecture

MULTI_VECTOR_OUTPUTS = ["token_embeddings"]
_SUPPORTED = {"Transformer", "Dense", "Normalize", "MultiVectorMask"}


class MultiVectorGraph(ChainGraph):
    """Token ids -> per-token embeddings (batch, length, dim) after projection and normalization."""

    output = "token_embeddings"


def _check(model: Any) -> tuple[list[str], Any, Any]:
    names = [type(m).__name__ for m in model]
    if names and names[0] == "Router":
        raise UnsupportedModelError("MultiVectorEncoder Routers (a model per query / document route) are not "
                                    "supported by st-runtime yet; SentenceTransformer and SparseEncoder Routers are.")
    bad = [n for n in names if n not in _SUPPORTED]
    if not names or names[0] != "Transformer" or bad:
        raise UnsupportedModelError(f"MultiVectorEncoder modules {names} are not supported; st-runtime exports "
                                    "Transformer [-> Dense] [-> MultiVectorMask] [-> Normalize].")
    transformer = model[0]
    if getattr(transformer, "query_expansion", None) is not None:
        raise UnsupportedModelError("Query expansion (Transformer.query_expansion) is not supported by st-runtime yet.")
    if getattr(transformer, "transformer_task", "feature-extraction") != "feature-extraction":
        raise UnsupportedModelError(f"Transformer task {transformer.transformer_task!r} is not supported for "
                                    "MultiVectorEncoder export (feature-extraction only).")
    mask = next((m for m in model if type(m).__name__ == "MultiVectorMask"), None)
    return names, transformer, mask


def write_multi_vector(source: SourceModel, tmp: Path, texts: Sequence[str] | None, atol: float,
                       progress) -> Manifest:
    """Trace a MultiVectorEncoder (without its mask) into ``tmp/model.onnx`` and prove parity."""
    model = source.model
    names, transformer, mask = _check(model)
    example = example_for(transformer)
    config = transformer.auto_model.config
    arch = architecture(config)
    graph = MultiVectorGraph([m for m in model if type(m).__name__ != "MultiVectorMask"], list(example))
    graph.eval()
    progress(f"tracing {arch['model_type']} multi-vector encoder ({' -> '.join(names)}) to ONNX")
    skip = getattr(mask, "_skiplist_ids", None) if mask is not None else None
    spec = MultiVectorSpec(
        dimension=int(model.get_embedding_dimension()),
        similarity_fn_name=model.similarity_fn_name,
        prompts=dict(model.prompts or {}),
        default_prompt_name=model.default_prompt_name,
        skiplist_ids=sorted(int(i) for i in skip.tolist()) if skip is not None else [],
        skiplist_tasks=list(mask.skiplist_tasks) if mask is not None else [],
        keep_only_token_ids=list(mask.keep_only_token_ids) if mask is not None and mask.keep_only_token_ids else None,
        query_length=transformer.query_length,
        document_length=transformer.document_length,
        normalized="Normalize" in names,
        modules=names,
    )
    manifest = trace_into_bundle(source, tmp, graph, example, MULTI_VECTOR_OUTPUTS, arch, transformer=transformer,
                                 kind="multi-vector-encoder", multi_vector=spec)
    progress("checking parity with torch")
    report = multi_vector_parity(model, tmp, texts, atol)
    return record_parity(tmp, manifest, report, "sentence_transformers.MultiVectorEncoder.encode (torch fp32)", atol,
                         progress)


def compare_token_lists(reference: list, candidate: list, what: str, atol: float) -> float:
    """Max abs over per-text (n_tokens, dim) arrays; the token counts must agree exactly."""
    worst = 0.0
    for i, (ref, ours) in enumerate(zip(reference, candidate)):
        ref = ref.float().numpy() if hasattr(ref, "numpy") else np.asarray(ref)
        if ref.shape != ours.shape:
            raise parity.ParityError(f"{what}: text {i} has {ref.shape[0]} scored tokens in torch, {ours.shape[0]} "
                                     "in the exported bundle.")
        if ref.size:
            worst = max(worst, float(np.abs(ref.astype(np.float64) - ours).max()))
    if len(reference) != len(candidate) or not worst <= atol:
        raise parity.ParityError(f"{what}: the exported graph differs from torch by max abs {worst:.3g} "
                                 f"(allowed {atol:g}). Nothing was written.")
    return worst


def multi_vector_parity(st: Any, bundle_dir: Path, texts: Sequence[str] | None, atol: float,
                        variant: str | None = None) -> dict[str, Any]:
    """Compare the runtime's MultiVectorEncoder with ST's encode / encode_query / encode_document, prompts, MaxSim."""
    from st_runtime.multi_vector_encoder import MultiVectorEncoder

    if texts is None:
        texts = corpus.parity_texts(96, long_words=int(min(max(1200, 1.3 * (st.max_seq_length or 512)), 12000)))
    texts = list(texts)
    runtime = MultiVectorEncoder(bundle_dir, variant=variant, verify=False)
    checks = {
        "encode": compare_token_lists(st.encode(texts, batch_size=32), runtime.encode(texts, batch_size=32),
                                      "encode", atol),
        "encode_query": compare_token_lists(st.encode_query(texts[:32]), runtime.encode_query(texts[:32]),
                                            "encode_query", atol),
        "encode_document": compare_token_lists(st.encode_document(texts[:32]), runtime.encode_document(texts[:32]),
                                               "encode_document", atol),
    }
    for name, prompt in runtime.prompts.items():
        if prompt:
            checks[f"prompt:{name}"] = compare_token_lists(st.encode(texts[:24], prompt_name=name),
                                                           runtime.encode(texts[:24], prompt_name=name),
                                                           f"prompt {name!r}", atol)
    q, d = runtime.encode_query(texts[:8]), runtime.encode_document(texts[8:24])
    scores = parity.compare(st.similarity(q, d).numpy(), runtime.similarity(q, d))
    checks["maxsim"] = scores.max_abs
    worst = max(checks.values())
    n = len(texts)
    return {"texts": n, "max_abs": worst, "checks": checks}
