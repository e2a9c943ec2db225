"""Export a SentenceTransformer or CrossEncoder into a verified bundle: trace, check parity, write atomically."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from st_runtime import corpus
from st_runtime.errors import ExportError
from st_runtime.manifest import Manifest

from . import bundle_writer, parity
from .bundle_steps import example_inputs, finish_manifest, record_parity, seal, trace_into_bundle
from .cross_encoder import write_cross_encoder
from .graph import EMBEDDING_OUTPUTS, EmbeddingGraph, check_modules
from .source import SourceModel, load_source
from .multi_vector import write_multi_vector
from .router_embedding import is_router_model, router_embedding_parity, write_router_embedding
from .routes import add_route_variants, check_route_variants
from .sparse import sparse_parity, write_sparse_encoder
from .static import is_static, write_static
from .specs import architecture, embedding_spec
from .accuracy_control import check_max_drop
from .variants import add_variants, check_calibration, expand

__all__ = ["export_model", "write_embedding", "embedding_parity", "default_texts",
           # the shared steps, re-exported for callers that imported them from here
           "example_inputs", "finish_manifest", "record_parity", "seal", "trace_into_bundle"]

logger = logging.getLogger(__name__)
FP32_ATOL = 1e-5

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def export_model(
    model: str | None,
    out: str | Path,
    *,
    overwrite: bool = False,
    variants: Sequence[str] = (),
    calibration: Sequence[str] | None = None,
    parity_texts: Sequence[str] | None = None,
    atol: float = FP32_ATOL,
    force: bool = False,
    progress: Progress = _quiet,
    eval_tasks: Sequence[Any] = (),
    trust_remote_code: bool = False,
    static_shapes: str | Sequence | None = None,
    with_tokenizer: Sequence[str] | None = None,
    max_drop: float | None = None,
) -> Path:
    """Export ``model`` (folder, packaged model or Hub id; None = all-MiniLM-L6-v2) to the bundle folder ``out``.

    The fp32 graph is always written and must match torch within ``atol``; ``variants`` adds optimized
    and quantized graphs, each behind its accuracy gate (``eval_tasks``: the user's own tasks from
    ``tasks.user_ir_task`` / ``user_sts_task`` join every reduced-precision gate). Any failure leaves nothing at ``out``.
    A model with its own modeling code (``auto_map``) is refused unless ``trust_remote_code``; that code runs only
    here, to trace. ``static_shapes`` ('1x64,8x128,32x256') adds a static-shape sibling of each OpenVINO variant.
    ``with_tokenizer`` (variant names, or ["all"]) adds a checked text-in graph per variant
    (``text_graph.add_text_graphs``). ``max_drop`` builds openvino-int8 with NNCF's accuracy control
    (``accuracy_control``).
    """
    started = time.perf_counter()
    if calibration and variants:
        check_calibration(calibration, eval_tasks)  # before minutes of tracing
    if max_drop is not None:
        check_max_drop(max_drop, expand(variants))
    progress(f"loading {model or 'the default model (all-MiniLM-L6-v2)'}")
    source = load_source(model, trust_remote_code=trust_remote_code)
    with bundle_writer.staging_dir(Path(out), overwrite) as tmp:
        routed = has_route_graphs(source)
        if routed:  # a graph per Router route: only exact variants, each route proved on its own
            check_route_variants(variants, static_shapes, with_tokenizer)
        if source.kind == "cross-encoder":
            manifest = write_cross_encoder(source, tmp, parity_texts, atol, progress)
        elif source.kind == "sparse-encoder":
            manifest = write_sparse_encoder(source, tmp, parity_texts, atol, progress)
        elif source.kind == "multi-vector-encoder":
            manifest = write_multi_vector(source, tmp, parity_texts, atol, progress)
        elif is_router_model(source.model):
            manifest = write_router_embedding(source, tmp, parity_texts, atol, progress)
        elif is_static(source.model):
            if variants:
                raise ExportError("A StaticEmbedding model has no graph to optimize or quantize: export it without "
                                  "--variants (it runs in numpy).")
            manifest = write_static(source, tmp, parity_texts, atol, progress)
        else:
            manifest = write_embedding(source, tmp, parity_texts, atol, progress)
        if routed and variants:
            check = sparse_parity if source.kind == "sparse-encoder" else router_embedding_parity
            add_route_variants(source, tmp, manifest, variants,
                               lambda v: check(source.model, tmp, parity_texts, atol, v), progress,
                               calibration=calibration, force=force, eval_tasks=eval_tasks)
            variants = ()  # added route by route
        if variants or static_shapes:
            add_variants(source, tmp, manifest, variants, calibration=calibration, force=force, progress=progress,
                         eval_tasks=eval_tasks, static_shapes=static_shapes, max_drop=max_drop)
        if with_tokenizer is not None:
            from .text_graph import add_text_graphs

            add_text_graphs(tmp, manifest, with_tokenizer, progress)
        seal(tmp, manifest)
        final = bundle_writer.commit(tmp, Path(out))
    progress(f"wrote {final} in {time.perf_counter() - started:.1f} s")
    return final


def has_route_graphs(source: SourceModel) -> bool:
    """Whether the model is a Router with more than one transformer route (a graph per route)."""
    if source.kind == "sparse-encoder":
        from .sparse import route_modules

        try:
            _, info = route_modules(source.model)
        except Exception:  # noqa: BLE001  (write_sparse_encoder reports unsupported models with their reason)
            return False
        return bool(info) and len(info["graph_routes"]) > 1
    return source.kind == "sentence-transformer" and is_router_model(source.model)


def write_embedding(source: SourceModel, tmp: Path, texts: Sequence[str] | None, atol: float,
                    progress: Progress) -> Manifest:
    """Trace a SentenceTransformer into ``tmp/model.onnx`` plus tokenizer and manifest, then prove parity."""
    st = source.model
    names = check_modules(st)
    spec = embedding_spec(st, names)
    example = example_inputs(st, ["A short text.", "A somewhat longer example sentence for tracing the graph."])
    input_names = list(example)
    prompt_aware = not spec.include_prompt
    if prompt_aware:
        example["prompt_length"] = torch.tensor([2], dtype=torch.int64)
    arch = architecture(st[0].auto_model.config)
    progress(f"tracing {arch['model_type']} ({' -> '.join(names)}) to ONNX")
    manifest = trace_into_bundle(source, tmp, EmbeddingGraph(st, input_names, prompt_aware), example,
                                 EMBEDDING_OUTPUTS, arch, embedding=spec)
    progress("checking parity with torch")
    report = embedding_parity(st, tmp, texts, atol)
    return record_parity(tmp, manifest, report, "sentence_transformers.SentenceTransformer.encode (torch fp32)",
                         atol, progress)


def default_texts(max_seq_length: int | None, n: int = 200) -> list[str]:
    """Parity texts: mixed lengths, some longer than max_seq_length (~1.3 words per token is a safe margin)."""
    long_words = int(min(max(1200, 1.3 * (max_seq_length or 512)), 12000))
    return corpus.parity_texts(n, long_words=long_words)


def embedding_parity(st: Any, bundle_dir: Path, texts: Sequence[str] | None, atol: float,
                     variant: str | None = None) -> dict[str, Any]:
    """Compare the bundle's graph with ``st.encode`` (plain, each prompt, token embeddings); raise on a miss."""
    from st_runtime import SentenceTransformer

    texts = list(texts) if texts is not None else default_texts(st.max_seq_length)
    runtime = SentenceTransformer(bundle_dir, variant=variant, verify=False)
    for start in range(0, len(texts), 32):
        batch = texts[start : start + 32]
        parity.check_tokenization(st.preprocess(batch), runtime.tokenizer(batch), "the parity texts")
    reference = st.encode(texts, batch_size=32, convert_to_numpy=True)
    main = parity.compare(reference, runtime.encode(texts, batch_size=32))
    parity.require(main, atol, "sentence_embedding")
    checks = parity.prompt_checks(st, runtime, texts[:48], atol)
    sub = texts[:12]
    ref_tokens = st.encode(sub, output_value="token_embeddings")
    our_tokens = runtime.encode(sub, output_value="token_embeddings")
    token_report = parity.compare(
        np.concatenate([t.float().numpy() for t in ref_tokens]), np.concatenate(our_tokens)
    )
    parity.require(token_report, atol, "token_embeddings")
    checks["token_embeddings"] = token_report.max_abs
    result = main.as_dict()
    result["checks"] = checks
    limit = st.max_seq_length or 10**9
    result["over_max_seq_length"] = sum(len(st.tokenizer(t, verbose=False)["input_ids"]) > limit for t in texts)
    return result
