"""SparseEncoder export: SPLADE (MLM Transformer + SpladePooling), CSR (Transformer + Pooling + SparseAutoEncoder)
and inference-free SPLADE (a Router whose query route is a SparseStaticEmbedding), each into one graph whose output
is the vocabulary- (or latent-) sized activation; top-k selection runs in numpy so ``max_active_dims`` stays a
per-call setting as in sentence-transformers."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from st_runtime.errors import UnsupportedModelError
from st_runtime.manifest import Manifest, RouterSpec, RouteSpec, SparseSpec, TokenizerSpec

from st_runtime import corpus

from . import parity
from .bundle_steps import record_parity, trace_into_bundle
from .chain_graph import ChainGraph
from .graph import EmbeddingGraph
from .routes import example_for, route_mappings, task_for_route, write_route_graph
from .source import SourceModel
from .specs import architecture

SPARSE_OUTPUTS = ["sentence_embedding"]
_TRANSFORMERS = {"Transformer", "MLMTransformer"}
_GRAPH_MODULES = _TRANSFORMERS | {"SpladePooling", "Pooling", "SparseAutoEncoder", "Dense", "Normalize"}


class SparseGraph(ChainGraph):
    """A sparse route's modules as one graph: token ids -> activation (batch, dimension) before any top-k."""

    output = "sentence_embedding"

    def step(self, module: Any, features: dict[str, Any]) -> dict[str, Any]:
        """Pooling in float64 as the dense graph pools; SparseAutoEncoder up to its pre-activation."""
        name = type(module).__name__
        if name == "Pooling":
            return EmbeddingGraph._pool_in_float64(None, module, features, None)  # noqa: SLF001
        if name == "SparseAutoEncoder":
            # Inference-mode branch of SparseAutoEncoder.forward, up to (not including) its top-k + ReLU,
            # which the runtime applies with the per-call k.
            x, _ = module.prepare(features["sentence_embedding"])
            features["sentence_embedding"] = module.encode_pre_act(x)
            return features
        return module(features)


def route_modules(model: Any) -> tuple[list[Any], dict[str, Any] | None]:
    """(modules of the main graph's route, router info or None) of a SparseEncoder.

    A Router's SparseStaticEmbedding routes run in numpy; of its transformer routes, the default one (else the first)
    is the bundle's main graph and each other one gets its own graph (``routes.write_route_graph``)."""
    modules = list(model)
    if modules and type(modules[0]).__name__ == "Router":
        if len(modules) > 1:
            raise UnsupportedModelError("A Router followed by further modules is not supported for SparseEncoder.")
        router = modules[0]
        graph_routes = [name for name, seq in router.sub_modules.items()
                        if type(seq[0]).__name__ != "SparseStaticEmbedding"]
        if not graph_routes:
            raise UnsupportedModelError("This Router has no transformer route; st-runtime exports SparseEncoder "
                                        "Routers with at least one.")
        main = router.default_route if router.default_route in graph_routes else graph_routes[0]
        return list(router.sub_modules[main]), {"router": router, "graph_route": main, "graph_routes": graph_routes}
    return modules, None


def _check_route_like_main(name: str, modules: list[Any], main: list[Any]) -> list[str]:
    """Another transformer route: a sparse route whose top-k and dimension match the main graph's (the manifest
    holds them once)."""
    names = check_sparse_modules(modules)
    sae = [int(m.k) for m in modules if type(m).__name__ == "SparseAutoEncoder"]
    main_sae = [int(m.k) for m in main if type(m).__name__ == "SparseAutoEncoder"]
    vocab = [getattr(m[0].auto_model.config, "vocab_size", None) for m in (modules, main)]
    if names[-1] == "SpladePooling" and vocab[0] != vocab[1]:
        raise UnsupportedModelError(f"Route {name!r} has a vocabulary of {vocab[0]}, the main route {vocab[1]}; "
                                    "st-runtime exports Routers whose routes share one sparse dimension.")
    if sae != main_sae:
        raise UnsupportedModelError(f"Route {name!r} has SparseAutoEncoder k={sae}, the main route {main_sae}; "
                                    "st-runtime exports Routers whose transformer routes share one top-k.")
    return names


def check_sparse_modules(modules: list[Any]) -> list[str]:
    names = [type(m).__name__ for m in modules]
    if not names or names[0] not in _TRANSFORMERS:
        raise UnsupportedModelError(f"The sparse route starts with {names[:1]}; st-runtime exports SparseEncoders "
                                    "whose (document) route starts with a Transformer module.")
    bad = [n for n in names if n not in _GRAPH_MODULES]
    if bad:
        raise UnsupportedModelError(f"Modules {bad} cannot be exported into a SparseEncoder graph; supported: "
                                    f"{sorted(_GRAPH_MODULES)}.")
    if names[-1] not in ("SpladePooling", "SparseAutoEncoder"):
        raise UnsupportedModelError(f"A SparseEncoder must end with SpladePooling or SparseAutoEncoder, not {names[-1]}.")
    return names


def _static_route(module: Any, name: str, tmp: Path) -> RouteSpec:
    """Write a SparseStaticEmbedding route's weights (.npy) and tokenizer (special tokens off, as it encodes)."""
    folder = tmp / "routes" / name
    folder.mkdir(parents=True)
    weights = module.weight.detach().to(torch.float32).cpu().numpy()
    np.save(folder / "weights.npy", weights, allow_pickle=False)
    tok = module.tokenizer
    tok.backend_tokenizer.save(str(folder / "tokenizer.json"))
    limit = tok.model_max_length if isinstance(tok.model_max_length, int) and tok.model_max_length < 10**8 else None
    spec = TokenizerSpec(file=f"routes/{name}/tokenizer.json", max_seq_length=limit, padding_side=tok.padding_side,
                         truncation_side=tok.truncation_side, pad_token=str(tok.pad_token),
                         pad_token_id=int(tok.pad_token_id),
                         special_token_ids=sorted(int(i) for i in tok.all_special_ids), model_max_length=None)
    return RouteSpec(type="sparse-static", weights_file=f"routes/{name}/weights.npy",
                     tokenizer_file=spec.file, tokenizer=spec, add_special_tokens=False,
                     modules=["SparseStaticEmbedding"])


def _router_spec(info: dict[str, Any], tmp: Path, progress) -> RouterSpec:
    router = info["router"]
    main = list(router.sub_modules[info["graph_route"]])
    routes = {}
    for name, seq in router.sub_modules.items():
        if name == info["graph_route"]:
            routes[name] = RouteSpec(type="graph", modules=[type(m).__name__ for m in seq])
        elif name in info["graph_routes"]:
            modules = list(seq)
            names = _check_route_like_main(name, modules, main)
            example = example_for(modules[0])
            graph = SparseGraph(modules, list(example))
            with torch.no_grad():  # SpladePooling learns its output dimension on its first call
                graph(*example.values())
            progress(f"tracing route {name!r} ({' -> '.join(names)}) to ONNX")
            routes[name] = write_route_graph(tmp, name, graph, example, SPARSE_OUTPUTS, modules[0], names)
        elif len(seq) == 1:
            routes[name] = _static_route(seq[0], name, tmp)
        else:
            raise UnsupportedModelError(f"Route {name!r} has modules after SparseStaticEmbedding; not supported.")
    return RouterSpec(routes=routes, default_route=router.default_route, route_mappings=route_mappings(router))


def write_sparse_encoder(source: SourceModel, tmp: Path, texts: Sequence[str] | None, atol: float,
                         progress) -> Manifest:
    """Trace a SparseEncoder's (document) route into ``tmp/model.onnx``, write its other routes, prove parity."""
    model = source.model
    modules, info = route_modules(model)
    names = check_sparse_modules(modules)
    transformer = modules[0]
    example = example_for(transformer)
    config = transformer.auto_model.config
    arch = architecture(config)
    graph = SparseGraph(modules, list(example))
    graph.eval()
    progress(f"tracing {arch['model_type']} sparse encoder ({' -> '.join(names)}) to ONNX")
    sae = next((m for m in modules if type(m).__name__ == "SparseAutoEncoder"), None)
    splade = next((m for m in modules if type(m).__name__ == "SpladePooling"), None)
    with torch.no_grad():  # SpladePooling learns its output dimension on its first call (before it: the hidden size)
        graph(*example.values())
    router = _router_spec(info, tmp, progress) if info else None  # first: traces (and so sizes) the other routes
    spec = SparseSpec(
        dimension=int(model.get_embedding_dimension()),
        pooling_strategy=splade.pooling_strategy if splade is not None else None,
        activation=splade.activation_function if splade is not None else None,
        similarity_fn_name=model.similarity_fn_name,
        max_active_dims=model.max_active_dims,
        topk_relu=int(sae.k) if sae is not None else None,
        prompts=dict(model.prompts or {}),
        default_prompt_name=model.default_prompt_name,
        modules=(["Router"] if info else []) + names,
        router=router,
    )
    manifest = trace_into_bundle(source, tmp, graph, example, SPARSE_OUTPUTS, arch, transformer=transformer,
                                 kind="sparse-encoder", sparse=spec)
    progress("checking parity with torch")
    report = sparse_parity(model, tmp, texts, atol)
    return record_parity(tmp, manifest, report, "sentence_transformers.SparseEncoder.encode (torch fp32)", atol,
                         progress)


def _dense(reference: Any) -> np.ndarray:
    return reference.to_dense().float().numpy() if reference.is_sparse else reference.float().numpy()


def active_mismatch(reference: np.ndarray, candidate: Any) -> int:
    """Rows whose set of active (non-zero) dimensions differs between torch and the runtime."""
    ours = candidate.toarray() if hasattr(candidate, "toarray") else np.asarray(candidate)
    return int(((reference != 0) != (ours != 0)).any(axis=1).sum())


def sparse_parity(st: Any, bundle_dir: Path, texts: Sequence[str] | None, atol: float,
                  variant: str | None = None) -> dict[str, Any]:
    """Compare the runtime's SparseEncoder with ``st.encode`` (each route, each prompt, max_active_dims)."""
    from st_runtime.sparse_encoder import SparseEncoder

    if texts is None:  # mixed lengths, some past max_seq_length (~1.3 words per token)
        texts = corpus.parity_texts(96, long_words=int(min(max(1200, 1.3 * (st.max_seq_length or 512)), 12000)))
    texts = list(texts)
    runtime = SparseEncoder(bundle_dir, variant=variant, verify=False)
    modules, info = route_modules(st)
    for start in range(0, len(texts), 32):
        batch = texts[start : start + 32]
        parity.check_tokenization(modules[0].preprocess(batch), runtime.tokenizer(batch), "the parity texts")
    checks: dict[str, float] = {}
    per_route: dict[str, dict[str, Any]] = {}
    mismatched = 0

    def check(what: str, ref: Any, ours: Any) -> parity.ParityReport:
        nonlocal mismatched
        dense = _dense(ref)
        report = parity.compare(dense, ours.toarray())
        parity.require(report, atol, f"sparse embedding ({what})")
        mismatched += active_mismatch(dense, ours)
        checks[what] = report.max_abs
        return report

    main = check("encode", st.encode(texts, batch_size=32), runtime.encode(texts, batch_size=32))
    for name in (info or {}).get("graph_routes", ()):
        if name == info["graph_route"]:
            continue
        task = task_for_route(runtime._spec.router, name)  # noqa: SLF001
        route_first = info["router"].sub_modules[name][0]
        for start in range(0, len(texts), 32):
            batch = texts[start : start + 32]
            parity.check_tokenization(route_first.preprocess(batch), runtime.tokenizer_for(task)(batch),
                                      f"the parity texts (route {name!r})")
        report = check(f"route:{name}", st.encode(texts, batch_size=32, task=task),
                       runtime.encode(texts, batch_size=32, task=task))
        per_route[name] = {**report.as_dict(), "task": task}
    sub = texts[:32]
    check("encode_query", st.encode_query(sub), runtime.encode_query(sub))
    check("encode_document", st.encode_document(sub), runtime.encode_document(sub))
    for name, prompt in runtime.prompts.items():
        if prompt:
            check(f"prompt:{name}", st.encode(sub, prompt_name=name), runtime.encode(sub, prompt_name=name))
    k = max(1, (st.max_active_dims or 64) // 2)
    check(f"max_active_dims={k}", st.encode(sub, max_active_dims=k), runtime.encode(sub, max_active_dims=k))
    result = main.as_dict()
    result["checks"] = checks
    result["active_dims_mismatched_rows"] = mismatched
    if per_route:
        result["routes"] = per_route
        result["max_abs"] = max(checks.values())
    limit = st.max_seq_length or 10**9
    result["over_max_seq_length"] = sum(len(modules[0].tokenizer(t, verbose=False)["input_ids"]) > limit for t in texts)
    return result

