"""Router models exported route by route: the bundle's main graph holds the default route, every other graph route
gets its own graph and tokenizer under ``routes/<name>/`` (``model.onnx``, ``tokenizer.json``, and with
``--variants openvino`` an exact ``openvino_model.xml``), recorded in the manifest's RouterSpec.

Shared by the dense (``router_embedding``) and sparse (``sparse``) exporters; imports neither."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from st_runtime.errors import ExportError, UnsupportedModelError
from st_runtime.manifest import Manifest, RouterSpec, RouteSpec, VariantSpec, check_relative_path
from st_runtime.routing import resolve_route

from . import bundle_writer
from .graph import eager_attention, export_onnx, graph_io
from .specs import tokenizer_spec

ROUTES_DIR = "routes"
# Variants a bundle with several route graphs can have besides the fp32 ONNX graphs: exact conversions only.
ROUTE_VARIANTS = ("openvino",)
_TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def router_of(model: Any) -> Any | None:
    """The model's leading Router module, or None."""
    modules = list(model)
    return modules[0] if modules and type(modules[0]).__name__ == "Router" else None


def main_route(router: Any) -> str:
    """The route the bundle's main graph holds: the default route (the first route when there is none)."""
    return router.default_route or next(iter(router.sub_modules))


def route_mappings(router: Any) -> list[list[Any]]:
    """Router.route_mappings as [task, modality, route] (multimodal tuple modalities never match text)."""
    return [[task, modality, route] for (task, modality), route in (router.route_mappings or {}).items()
            if not isinstance(modality, tuple)]


def router_spec(router: Any, routes: dict[str, RouteSpec]) -> RouterSpec:
    return RouterSpec(routes=routes, default_route=router.default_route, route_mappings=route_mappings(router))


def task_for_route(spec: RouterSpec, route: str) -> str:
    """A task that sentence-transformers resolves to ``route`` for text (the route's own name, or a mapped task)."""
    candidates = [route, *(task for task, _, target in spec.route_mappings if target == route and task)]
    for task in dict.fromkeys(candidates):
        try:
            if resolve_route(spec, task) == route:
                return task
        except Exception:  # noqa: BLE001  (an unresolvable candidate is simply not the one)
            continue
    raise UnsupportedModelError(f"No task reaches route {route!r} for text inputs (its route_mappings send every "
                                "task elsewhere); st-runtime exports Router routes that text can take.")


def check_route_variants(names: Sequence[str], static_shapes: Any = None, with_tokenizer: Any = None) -> None:
    """Refuse what a bundle with several route graphs cannot have (before any tracing)."""
    bad = [n for n in names if n not in ROUTE_VARIANTS]
    if bad or static_shapes or with_tokenizer is not None:
        what = f"variants {bad}" if bad else "--static-shapes" if static_shapes else "--with-tokenizer"
        raise ExportError(
            f"This Router model has several transformer routes, each exported to its own graph; {what} would need "
            "every route quantized and gated on its own, which st-runtime does not do yet. Export it with "
            f"--variants {' '.join(ROUTE_VARIANTS)} (exact) or without --variants."
        )


def example_for(transformer: Any) -> dict[str, torch.Tensor]:
    features = transformer.preprocess(["A short text.", "A somewhat longer example sentence for tracing the graph."])
    return {k: features[k] for k in _TOKEN_INPUTS if isinstance(features.get(k), torch.Tensor)}


def write_route_graph(tmp: Path, name: str, graph: torch.nn.Module, example: dict[str, torch.Tensor],
                      output_names: list[str], transformer: Any, modules: list[str]) -> RouteSpec:
    """Trace one route's ``graph`` to ``routes/<name>/model.onnx`` and save its tokenizer beside it."""
    folder_rel = f"{ROUTES_DIR}/{name}"
    check_relative_path(folder_rel, f"route {name!r}")
    if "/" in name or name in (".", ""):
        raise UnsupportedModelError(f"Route name {name!r} cannot name a folder; rename the route.")
    folder = tmp / ROUTES_DIR / name
    folder.mkdir(parents=True, exist_ok=True)
    config = transformer.auto_model.config
    switch = getattr(transformer.tokenizer, "padding_side", "right") == "right"
    graph.eval()
    with eager_attention(graph) if switch else contextlib.nullcontext():
        export_onnx(graph, example, output_names, folder / "model.onnx", str(getattr(config, "model_type", "")))
    bundle_writer.externalize_weights(folder)
    inputs, outputs = graph_io(folder / "model.onnx")
    transformer.tokenizer.backend_tokenizer.save(str(folder / "tokenizer.json"))
    tok = tokenizer_spec(transformer.tokenizer, config, transformer.max_seq_length,
                         getattr(transformer, "do_lower_case", False))
    tok.file = f"{folder_rel}/tokenizer.json"
    data = folder / "model.onnx.data"
    variant = VariantSpec(file=f"{folder_rel}/model.onnx", inputs=inputs, outputs=outputs,
                          weights_file=f"{folder_rel}/model.onnx.data" if data.is_file() else None,
                          settings={"auto_rank": 1, "opset": 17})
    return RouteSpec(type="graph", tokenizer_file=tok.file, tokenizer=tok, modules=modules,
                     variants={"onnx": variant})


def add_openvino_routes(tmp: Path, manifest: Manifest) -> None:
    """The exact OpenVINO IR (fp32 weights, f32 inference) of every route graph, converted from its ONNX graph."""
    try:
        import openvino as ov
    except ImportError as exc:
        raise ImportError("OpenVINO variants need the openvino extra: pip install 'st-runtime[quantize]'") from exc
    for name, route in manifest.graph_routes().items():
        onnx = route.variants["onnx"]
        stem = f"{ROUTES_DIR}/{name}/openvino_model"
        ov.save_model(ov.convert_model(str(tmp / onnx.file)), str(tmp / f"{stem}.xml"), compress_to_fp16=False)
        route.variants["openvino"] = VariantSpec(
            file=f"{stem}.xml", weights_file=f"{stem}.bin", format="openvino", precision="fp32", target="cpu",
            inputs=list(onnx.inputs), outputs=list(onnx.outputs),
            settings={"inference_precision": "f32", "auto_rank": 2, "exact": True})


def add_route_variants(source: Any, tmp: Path, manifest: Manifest, names: Sequence[str],
                       parity: Callable[[str], dict[str, Any]], progress, **variant_options: Any) -> None:
    """``names`` (exact variants only) for the main graph, gated as usual, and for every route graph, each route
    proved within the fp32 tolerance by ``parity(variant)`` (figures per route in its variant's accuracy)."""
    from .bundle_steps import finish_manifest
    from .variants import add_variants

    check_route_variants(names)
    if "openvino" in names:
        progress("converting every route graph to OpenVINO IR")
        add_openvino_routes(tmp, manifest)
    if names:
        add_variants(source, tmp, manifest, names, progress=progress, **variant_options)
    for variant in names:
        if variant in manifest.variants:
            record_route_parity(manifest, parity(variant), variant)
    finish_manifest(tmp, manifest)


def record_route_parity(manifest: Manifest, report: dict[str, Any], variant: str) -> None:
    """Each route graph's figures from a routed parity report into its variant's accuracy."""
    for name, figures in report.get("routes", {}).items():
        route = manifest.router.routes[name]
        if variant in route.variants:
            route.variants[variant].accuracy = dict(figures)
