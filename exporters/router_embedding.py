"""SentenceTransformer export of a Router model whose routes are different transformers (asymmetric query /
document encoders): ``[Router(query=[Transformer_A, ...], document=[Transformer_B, ...]), <shared modules>]``.

The default route (with the modules after the Router) is the bundle's main graph, every other route its own graph
under ``routes/<name>/``; each route is proved within the fp32 tolerance of ``st.encode(task=...)`` on the parity
texts, and its figures are recorded with its graph."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from st_runtime import corpus
from st_runtime.errors import UnsupportedModelError
from st_runtime.manifest import Manifest, RouteSpec

from . import parity
from .bundle_steps import record_parity, trace_into_bundle
from .graph import EMBEDDING_OUTPUTS, TRACEABLE_MODULES, EmbeddingGraph
from .routes import (example_for, main_route, record_route_parity, router_of, router_spec, task_for_route,
                     write_route_graph)
from .source import SourceModel
from .specs import architecture, embedding_spec

__all__ = ["is_router_model", "write_router_embedding", "router_embedding_parity"]


def is_router_model(model: Any) -> bool:
    return router_of(model) is not None


def _route_modules(model: Any) -> dict[str, list[Any]]:
    """Each route's modules followed by the modules after the Router, checked to trace into one graph."""
    router, tail = router_of(model), list(model)[1:]
    routes = {}
    for name, seq in router.sub_modules.items():
        modules = list(seq) + tail
        names = [type(m).__name__ for m in modules]
        if not names or names[0] != "Transformer":
            raise UnsupportedModelError(
                f"Route {name!r} starts with {names[:1]}; st-runtime exports Router routes that start with a "
                "Transformer module (a StaticEmbedding route is not supported in a SentenceTransformer Router yet).")
        bad = [n for n in names if n not in TRACEABLE_MODULES]
        if bad:
            raise UnsupportedModelError(f"Route {name!r} has modules {bad} that cannot be exported into one graph; "
                                        f"supported: {sorted(TRACEABLE_MODULES)}.")
        if "text" not in getattr(modules[0], "modality_config", {"text": None}):
            raise UnsupportedModelError(f"Route {name!r} has no text modality; only text routes can be exported.")
        pooling = next((m for m in modules if type(m).__name__ == "Pooling"), None)
        if pooling is not None and not pooling.include_prompt:
            raise UnsupportedModelError(f"Route {name!r} pools with include_prompt=False, which st-runtime does not "
                                        "export for Router models yet.")
        routes[name] = modules
    return routes


class _Modules(list):
    """A plain list of modules that ``embedding_spec`` can read like a model."""

    def __init__(self, modules: list[Any], model: Any) -> None:
        super().__init__(modules)
        self._model = model

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


def write_router_embedding(source: SourceModel, tmp: Path, texts: Sequence[str] | None, atol: float,
                           progress) -> Manifest:
    """Trace every route (main graph: the default route) and prove each against torch."""
    st = source.model
    router = router_of(st)
    routes = _route_modules(st)
    main = main_route(router)
    dims = {name: int(seq[-1].get_embedding_dimension()) if hasattr(seq[-1], "get_embedding_dimension") else None
            for name, seq in routes.items()}
    dims = {n: d for n, d in dims.items() if d is not None}
    if len(set(dims.values())) > 1:
        raise UnsupportedModelError(f"The Router's routes give embeddings of different sizes {dims}; st-runtime "
                                    "exports Routers whose routes share one embedding dimension.")
    specs: dict[str, RouteSpec] = {}
    for name, modules in routes.items():
        names = [type(m).__name__ for m in modules]
        if name == main:
            specs[name] = RouteSpec(type="graph", modules=names)
            continue
        transformer = modules[0]
        example = example_for(transformer)
        progress(f"tracing route {name!r} ({' -> '.join(names)}) to ONNX")
        specs[name] = write_route_graph(tmp, name, EmbeddingGraph(torch.nn.ModuleList(modules), list(example), False),
                                        example, EMBEDDING_OUTPUTS, transformer, names)
    modules = routes[main]
    names = [type(m).__name__ for m in modules]
    spec = embedding_spec(_Modules(modules, st), names)
    spec.modules = ["Router", *names]
    spec.router = router_spec(router, specs)
    transformer = modules[0]
    example = example_for(transformer)
    arch = architecture(transformer.auto_model.config)
    progress(f"tracing the default route {main!r} ({' -> '.join(names)}) to ONNX")
    manifest = trace_into_bundle(source, tmp, EmbeddingGraph(torch.nn.ModuleList(modules), list(example), False), example,
                                 EMBEDDING_OUTPUTS, arch, transformer=transformer, embedding=spec)
    progress("checking every route's parity with torch")
    report = router_embedding_parity(st, tmp, texts, atol)
    record_route_parity(manifest, report, "onnx")
    return record_parity(tmp, manifest, report, "sentence_transformers.SentenceTransformer.encode(task=...) "
                         "(torch fp32), route by route", atol, progress)


def router_embedding_parity(st: Any, bundle_dir: Path, texts: Sequence[str] | None, atol: float,
                            variant: str | None = None) -> dict[str, Any]:
    """Each route of the bundle against ``st.encode(texts, task=<a task that takes that route>)``; raise on a miss.

    Also checks the tokenization of each route, encode without a task (the default route), encode_query /
    encode_document, each prompt, and token embeddings."""
    from st_runtime import SentenceTransformer

    if texts is None:  # export.default_texts: mixed lengths, some past max_seq_length (~1.3 words per token)
        texts = corpus.parity_texts(200, long_words=int(min(max(1200, 1.3 * (st.max_seq_length or 512)), 12000)))
    texts = list(texts)
    runtime = SentenceTransformer(bundle_dir, variant=variant, verify=False)
    router = runtime.manifest.embedding.router
    routes = _route_modules(st)
    per_route: dict[str, dict[str, Any]] = {}
    for name in router.routes:
        task = task_for_route(router, name)
        tokenizer = runtime.tokenizer_for(task)
        for start in range(0, len(texts), 32):
            batch = texts[start : start + 32]
            parity.check_tokenization(routes[name][0].preprocess(batch), tokenizer(batch),
                                      f"the parity texts (route {name!r})")
        report = parity.compare(st.encode(texts, batch_size=32, task=task),
                                runtime.encode(texts, batch_size=32, task=task))
        parity.require(report, atol, f"sentence_embedding of route {name!r} (task={task!r})")
        sub = texts[:12]
        ref_tokens = st.encode(sub, output_value="token_embeddings", task=task)
        tokens = parity.compare(np.concatenate([t.float().numpy() for t in ref_tokens]),
                                np.concatenate(runtime.encode(sub, output_value="token_embeddings", task=task)))
        parity.require(tokens, atol, f"token_embeddings of route {name!r}")
        limit = routes[name][0].max_seq_length or 10**9
        over = sum(len(routes[name][0].tokenizer(t, verbose=False)["input_ids"]) > limit for t in texts)
        per_route[name] = {**report.as_dict(), "task": task, "token_embeddings_max_abs": tokens.max_abs,
                           "over_max_seq_length": over}
    main = parity.compare(st.encode(texts, batch_size=32), runtime.encode(texts, batch_size=32))
    parity.require(main, atol, "sentence_embedding without a task (the default route)")
    checks: dict[str, float] = {}
    sub = texts[:32]
    for what, ref, ours in (("encode_query", st.encode_query(sub), runtime.encode_query(sub)),
                            ("encode_document", st.encode_document(sub), runtime.encode_document(sub))):
        report = parity.compare(ref, ours)
        parity.require(report, atol, what)
        checks[what] = report.max_abs
    checks.update(parity.prompt_checks(st, runtime, sub, atol))
    result = main.as_dict()
    result["max_abs"] = max([main.max_abs, *(r["max_abs"] for r in per_route.values()), *checks.values()])
    result["checks"] = checks
    result["routes"] = per_route
    result["over_max_seq_length"] = max(r["over_max_seq_length"] for r in per_route.values())
    return result

