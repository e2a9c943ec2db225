"""Add optimized / quantized variants to a bundle, each behind its accuracy gate, with fp32 fallback for int8."""

from __future__ import annotations

import functools
import logging
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from st_runtime.bundle import Bundle
from st_runtime.errors import ExportError, InputValidationError
from st_runtime.manifest import Manifest, VariantSpec

from . import accuracy_control, bundle_writer, gates, multi_vector_gates, sparse_gates, tasks
from . import int4
from .onnx_weight_only import build_onnx_int8_wo
from . import static_shapes as shape_variants
from .bundle_steps import finish_manifest, seal
from .calibration import roles, weight_matmuls
from .onnx_variants import (
    BuildContext,
    build_onnx_fp16,
    build_onnx_int8_dynamic,
    build_onnx_int8_static,
    build_onnx_opt,
    calibration_candidates,
)
from .openvino_variants import (
    build_openvino,
    build_openvino_bf16,
    build_openvino_fp16,
    build_openvino_int8,
    build_openvino_int8_weights,
    smooth_quant_candidates,
)

logger = logging.getLogger(__name__)
Builder = Callable[[BuildContext, Sequence[str]], VariantSpec]

BUILDERS: dict[str, Builder] = {
    "onnx-opt": build_onnx_opt,
    "onnx-fp16": build_onnx_fp16,
    "onnx-int8-dynamic": build_onnx_int8_dynamic,
    "onnx-int8-static": build_onnx_int8_static,
    "onnx-int8-wo": build_onnx_int8_wo,
    "openvino": build_openvino,
    "openvino-fp16": build_openvino_fp16,
    "openvino-bf16": build_openvino_bf16,
    "openvino-int8": build_openvino_int8,
    "openvino-int8-wo": build_openvino_int8_weights,
    "openvino-int4": int4.build_openvino_int4,
}
FALLBACK = {"onnx-int8-dynamic", "onnx-int8-static", "onnx-int8-wo", "openvino-int8", "openvino-int8-wo"}
# Variants whose settings are searched on the selection split (int4: group size and mode), then gated.
SEARCHED = {"openvino-int4": int4.candidates}
# Variants whose quantizer setting is tuned: every candidate is built and scored on the selection split, the best is
# kept (and used by the fp32 fallback): static int8's calibration method, openvino-int8's SmoothQuant alpha.
TUNED = {"onnx-int8-static": calibration_candidates, "openvino-int8": smooth_quant_candidates}
# Variants made for size: file size, load time and peak RSS measured in a fresh process and recorded.
FOOTPRINT = {"openvino-int4", "onnx-int8-wo"}


def expand(names: Sequence[str]) -> list[str]:
    """Validate variant names; 'all' means every builder."""
    if "all" in names:
        return list(BUILDERS)
    unknown = [n for n in names if n not in BUILDERS]
    if unknown:
        raise InputValidationError(f"Unknown variants {unknown}; choose from {list(BUILDERS)} or 'all'.")
    return list(dict.fromkeys(names))


class _Gatekeeper:
    """Builds a variant, measures it against torch, and keeps it only if its gate holds on the gate split.

    The torch references of both splits are computed once and shared by every variant. The int8 fallback chooses
    the layers kept in fp32 from figures on the selection split only; the gate split's figures are only reported
    (and decide whether the variant is written).
    """

    def __init__(self, source_model: Any, kind: str, ctx: BuildContext, progress, user_tasks: Sequence = (),
                 max_drop: float | None = None) -> None:
        self.kind, self.ctx, self.progress = kind, ctx, progress
        self.user_tasks = list(user_tasks)
        self.max_drop = max_drop
        if kind == "cross-encoder":
            self.reference = gates.cross_encoder_reference(source_model, "gate")
            self._selection = lambda: gates.cross_encoder_reference(source_model, "selection")
        elif kind == "sparse-encoder":
            self.reference = sparse_gates.sparse_reference(source_model)
            self._selection = lambda: _sparse_selection(source_model)
        elif kind == "multi-vector-encoder":
            self.reference = multi_vector_gates.multi_vector_reference(source_model, "gate")
            self._selection = lambda: multi_vector_gates.multi_vector_reference(source_model, "selection")
        else:
            self.reference = gates.embedding_reference(source_model, "gate", self.user_tasks)
            self._selection = lambda: gates.embedding_reference(source_model, "selection")
        self._selection_ref = None

    @property
    def selection(self):
        if self._selection_ref is None:  # only the fallback needs it
            self._selection_ref = self._selection()
        return self._selection_ref

    def measure(self, name: str, spec: VariantSpec, reference=None) -> dict[str, float]:
        started = time.perf_counter()
        try:
            return self._measure(name, spec, reference)
        finally:
            self._seconds(name)["measure"] += time.perf_counter() - started

    def _seconds(self, name: str) -> dict[str, float]:
        """Where building ``name`` spent its time (recorded in ``parity.export_seconds``)."""
        table = self.ctx.manifest.parity.setdefault("export_seconds", {})
        return table.setdefault(name, {"total": 0.0, "measure": 0.0})

    def _measure(self, name: str, spec: VariantSpec, reference=None) -> dict[str, float]:
        reference = reference if reference is not None else self.reference
        self.ctx.manifest.variants[name] = spec
        finish_manifest(self.ctx.root, self.ctx.manifest)
        if self.kind == "cross-encoder":
            return gates.measure_cross_encoder_variant(reference, self.ctx.root, name)
        if self.kind == "sparse-encoder":
            return sparse_gates.measure_sparse_variant(reference, self.ctx.root, name)
        if self.kind == "multi-vector-encoder":
            return multi_vector_gates.measure_multi_vector_variant(reference, self.ctx.root, name)
        return gates.measure_embedding_variant(reference, self.ctx.root, name)

    def gate_for(self, spec: VariantSpec) -> dict[str, float]:
        if self.kind == "sparse-encoder":  # no labelled sparse task yet: value and overlap figures only
            key = "fp32" if spec.precision == "fp32" and spec.settings.get("exact") else spec.precision
            return dict(sparse_gates.SPARSE_GATES.get(key, sparse_gates.SPARSE_GATES["int8"]))
        if self.kind == "multi-vector-encoder":  # MaxSim retrieval overlap
            key = "fp32" if spec.precision == "fp32" and spec.settings.get("exact") else spec.precision
            return dict(multi_vector_gates.MULTI_VECTOR_GATES.get(key, multi_vector_gates.MULTI_VECTOR_GATES["int8"]))
        return gates.gate_for(spec.precision, bool(spec.settings.get("exact")), self.kind, bool(self.user_tasks))

    def build(self, name: str, force: bool) -> tuple[VariantSpec | None, dict]:
        """Build, gate (fallback if needed) and keep or refuse one variant; its time split is recorded."""
        started = time.perf_counter()
        try:
            return self._build(name, force)
        finally:
            seconds = self._seconds(name)
            seconds["total"] = time.perf_counter() - started
            seconds["build"] = seconds["total"] - seconds["measure"]  # quantizing / converting, and writing
            self.ctx.manifest.parity["export_seconds"][name] = {k: round(v, 2) for k, v in seconds.items()}

    def _build(self, name: str, force: bool) -> tuple[VariantSpec | None, dict]:
        builder = BUILDERS[name]
        controlled = self.max_drop is not None and name in accuracy_control.VARIANTS
        if name in TUNED:
            spec, params = self._tune(name, builder, rebuild=controlled)
            builder = functools.partial(builder, **params)
        if controlled:  # NNCF reverts layers itself, on the selection split (or the user's data)
            spec = self._controlled(name, builder)
        elif name in SEARCHED:
            spec = self._search(name, builder)
        elif name not in TUNED:
            spec = builder(self.ctx, ())
        gate = self.gate_for(spec)
        figures = self.measure(name, spec)
        self.progress(f"{name}: {gates.describe(figures, gate)}")
        if not gates.passes(figures, gate) and name in FALLBACK and not controlled:
            fallback_started = time.perf_counter()
            spec = self._fallback(name, builder, {k: v for k, v in gate.items() if k != gates.USER_KEY})
            self._seconds(name)["fallback"] = time.perf_counter() - fallback_started
            figures = self.measure(name, spec)
            self.progress(f"{name}: on the gate split -> {gates.describe(figures, gate)}")
        if name in TUNED:
            spec.settings["tuned"] = self.ctx.notes["tuned"][name]
        passed = gates.passes(figures, gate)
        spec.accuracy = {**figures, "gate": gate, "passed": passed,
                         "reference": "torch fp32; gate split (pydoc topics and stdlib modules that neither "
                                      "calibration nor the fp32 fallback saw)"}
        if passed or force:
            if not passed:
                spec.settings["forced"] = True
                self.progress(f"{name}: MISSED its gate, written because --force was given")
            if name in FOOTPRINT:
                spec.settings["footprint"] = self._footprint(name, spec)
            return spec, figures
        self._remove(name, spec)
        self.progress(f"{name}: REFUSED, it misses its gate ({gates.describe(figures, gate)}); use --force to keep it")
        searched = {"search": spec.settings["search"]} if "search" in spec.settings else {}
        return None, {"figures": figures, "gate": gate, **searched}

    def _tune(self, name: str, builder: Builder, rebuild: bool = False) -> tuple[VariantSpec | None, dict]:
        """Every candidate setting of ``TUNED[name]`` built and measured on the selection split; the one with the best
        score (``_score``) is kept. Returns its spec (None when ``rebuild``: the caller builds it another way) and
        its settings; every trial is recorded in ``settings.tuned``."""
        candidates = TUNED[name](self.ctx)
        trials, spec, best = [], None, 0
        for i, params in enumerate(candidates):
            spec = builder(self.ctx, (), **params)
            figures = self.measure(name, spec, self.selection)
            score = self._score(figures)
            self.progress(f"{name} {params}: selection split score {score:.4f} (top-10 "
                          f"{figures.get('top10_overlap', float('nan')):.4f}, NDCG@10 retention "
                          f"{figures.get('ndcg10_retention', float('nan')):.4f})")
            trials.append({**params, "score": score, **{k: figures.get(k) for k in
                                                        ("mean_cosine", "top10_overlap", "ndcg10_retention")}})
            if score > trials[best]["score"]:
                best = i
        params = candidates[best]
        if rebuild:
            spec = None
        elif best != len(candidates) - 1:  # a later trial overwrote the best one's files
            spec = builder(self.ctx, (), **params)
        self.ctx.notes.setdefault("tuned", {})[name] = {
            "chosen": params, "trials": trials, "measured_on": "selection split",
            "score": "top-10 overlap (cross-encoders: Spearman) + mean cosine + NDCG@10 retention"}
        return spec, params

    def _score(self, figures: dict) -> float:
        """How close a trial is to torch fp32 (higher is better): the sum the fp32 fallback ranks roles by."""
        key = "spearman" if self.kind == "cross-encoder" else "top10_overlap"
        parts = [figures.get(key, 0.0), figures.get("mean_cosine", 0.0), figures.get("ndcg10_retention", 0.0)]
        return float(sum(p if isinstance(p, float) and np.isfinite(p) else 0.0 for p in parts))

    def _controlled(self, name: str, builder: Builder) -> VariantSpec:
        """``name`` through NNCF's accuracy control: on the user's tasks when given, else the selection split's."""
        if self.user_tasks:
            task_list, data = self.user_tasks, "the user's evaluation data (--eval-ir / --eval-sts)"
        else:
            task_list, data = [task for _, task in self.selection.tasks], "built-in retrieval task, selection split"
        self.ctx.accuracy_control = accuracy_control.AccuracyControl(self.max_drop, list(task_list), data)
        try:
            spec = builder(self.ctx, ())
        finally:
            self.ctx.accuracy_control = None
        record = spec.settings["accuracy_control"]
        self.progress(f"{name}: accuracy control (max drop {self.max_drop:g}) on {data}: retention "
                      f"{record['int8_before']} -> {record['int8_after']:.4f}, {record['reverted_operations']} "
                      "operations reverted to fp32")
        return spec

    def _search(self, name: str, builder: Builder) -> VariantSpec:
        """The first of the variant's candidate settings that passes its gate on the selection split (the last
        one tried when none does; the gate split then refuses it). Each trial is recorded in the settings."""
        import nncf

        trials, spec = [], None
        for params in SEARCHED[name](self.ctx):
            try:
                spec = builder(self.ctx, (), **params)
            except (nncf.InvalidGroupSizeError, nncf.ValidationError) as exc:  # a group size that does not divide
                trials.append({**params, "error": str(exc)[:200]})          # some weight's input channels
                continue
            gate = {k: v for k, v in self.gate_for(spec).items() if k != gates.USER_KEY}
            figures = self.measure(name, spec, self.selection)
            ok = gates.passes(figures, gate)
            self.progress(f"{name} {params}: selection split {gates.describe(figures, gate)}")
            trials.append({**params, "passed_on_selection": ok, "top10_overlap": figures.get("top10_overlap"),
                           "ndcg10_retention": figures.get("ndcg10_retention")})
            if ok:
                break
        if spec is None:
            raise ExportError(f"{name}: no candidate setting could be built: {trials}")
        spec.settings["search"] = trials
        return spec

    def _footprint(self, name: str, spec: VariantSpec) -> dict:
        from st_runtime.bench.footprint import variant_files_mb, variant_footprint

        self.ctx.manifest.variants[name] = spec
        finish_manifest(self.ctx.root, self.ctx.manifest)
        probe = variant_footprint(self.ctx.root, name, self.kind)
        small = variant_footprint(self.ctx.root, name, self.kind, max_batch_tokens=512, threads=1)  # low-memory settings
        figures = {"file_mb": round(variant_files_mb(self.ctx.root, spec), 2), "load_s": round(probe["load_s"], 3),
                   "peak_rss_mb": round(probe["peak_rss_mb"], 1), "batch_size": probe["batch_size"],
                   "peak_rss_mb_threads_1_max_batch_tokens_512": round(small["peak_rss_mb"], 1),
                   "measured": "fresh process: load, then encode 4 batches of 32 passages (peak RSS: Linux VmHWM)"}
        self.progress(f"{name}: footprint {figures}")
        return figures

    def build_static(self, base: str, buckets, force: bool) -> tuple[VariantSpec | None, dict]:
        """The static-shape sibling of OpenVINO variant ``base``: its own gate (the source's, on the gate split), and
        for exact variants also within 1e-5 of the dynamic source."""
        name = shape_variants.static_name(base)
        spec = shape_variants.build_static(self.ctx.root, self.ctx.manifest, base, buckets)
        gate = self.gate_for(spec)
        figures = self.measure(name, spec)
        figures.update(shape_variants.compare_with_dynamic(self.ctx.root, self.ctx.manifest, name, self.kind))
        exact_ok = not spec.settings.get("exact") or figures["max_abs_vs_dynamic"] <= 1e-5
        passed = gates.passes(figures, gate) and exact_ok
        self.progress(f"{name}: {gates.describe(figures, gate)}; max abs vs {base} {figures['max_abs_vs_dynamic']:.2e}")
        spec.accuracy = {**figures, "gate": gate, "passed": passed,
                         "reference": f"torch fp32; gate split; and the dynamic-shape {base} (max_abs_vs_dynamic)"}
        if passed or force:
            if not passed:
                spec.settings["forced"] = True
            return spec, figures
        shape_variants.remove_files(self.ctx.root, self.ctx.manifest, name)
        self.ctx.manifest.variants.pop(name, None)
        self.progress(f"{name}: REFUSED, it misses its gate; use --force to keep it")
        return None, {"figures": figures, "gate": gate}

    def sensitivity(self, name: str, builder: Builder) -> dict[str, float]:
        """Per MatMul role: the selection-split figures of ``name`` with only that role kept in fp32 (higher = its
        quantization hurts more), measured once per variant with its own quantizer and recorded in the manifest.

        (A cheaper probe, ONNX Runtime dynamic int8 for every variant, ranked the roles wrongly for static int8 on
        MiniLM, whose loss comes from activation ranges: the fallback then kept 12 MatMuls in fp32 for no gain.)
        """
        cache = self.ctx.notes.setdefault("sensitivity", {})
        if name not in cache:
            key = "spearman" if self.kind == "cross-encoder" else "top10_overlap"
            gains = {}
            for role, nodes in roles(weight_matmuls(self.ctx.fp32)).items():
                trial = self.measure(name, builder(self.ctx, nodes), self.selection)
                gains[role] = trial.get(key, 0) + trial.get("mean_cosine", 0) + trial.get("ndcg10_retention", 0)
            cache[name] = gains
            self.ctx.manifest.parity.setdefault("fp32_fallback_sensitivity", {
                "measured_on": "selection split, the variant's own quantizer with one MatMul role kept in fp32",
                "score": "top-10 overlap (cross-encoders: Spearman) + mean cosine + NDCG@10 retention",
            })[name] = gains
        return cache[name]

    def _fallback(self, name: str, builder: Builder, gate: dict) -> VariantSpec:
        """Keep the MatMul roles whose quantization hurts most in fp32 until the selection split clears the gate
        with ``gates.SELECTION_MARGIN`` to spare.

        Roles are added in the order of ``sensitivity()``; the gate split is never looked at here.
        """
        groups = roles(weight_matmuls(self.ctx.fp32))
        gains = self.sensitivity(name, builder)
        target = gates.with_margin(gate)
        self.ctx.manifest.parity["fp32_fallback_margin"] = {
            "selection_split_must_clear": gates.SELECTION_MARGIN,
            "why": "stop only when the selection split clears the gate by about one standard error, so the gate "
                   "split (other text) does not miss by a hair"}
        excluded: list[str] = []
        spec = None
        for role in sorted(gains, key=gains.get, reverse=True)[: max(1, len(groups) - 1)]:
            excluded += groups[role]
            spec = builder(self.ctx, excluded)
            figures = self.measure(name, spec, self.selection)
            self.progress(f"{name}: {len(excluded)} MatMuls kept in fp32 -> selection split "
                          f"{gates.describe(figures, target)}")
            if gates.passes(figures, target):
                break
        return spec

    def _remove(self, name: str, spec: VariantSpec) -> None:
        self.ctx.manifest.variants.pop(name, None)
        onnx_data = f"{spec.file}.data" if spec.format == "onnx" else None  # written past 2 GiB, named at seal
        for rel in (spec.file, spec.weights_file, onnx_data):
            if rel and (self.ctx.root / rel).exists():
                (self.ctx.root / rel).unlink()


def add_variants(source: Any, root: Path, manifest: Manifest, names: Sequence[str], *,
                 calibration: Sequence[str] | None = None, force: bool = False, progress=lambda _: None,
                 eval_tasks: Sequence = (), static_shapes: str | Sequence | None = None,
                 max_drop: float | None = None) -> Manifest:
    """Build ``names`` into the staging folder ``root`` next to the fp32 graph and record them in the manifest.

    ``static_shapes`` ('1x64,8x128,32x256') adds a static-shape sibling (``NAME-static-shapes``) of every OpenVINO
    variant of the bundle, each behind its own gate (see ``static_shapes``); rebuilt OpenVINO variants that had such
    a sibling get it rebuilt with its recorded shapes.

    ``eval_tasks`` (``tasks.user_ir_task`` / ``user_sts_task``) add the user's own task to every reduced-precision
    gate; calibration texts that overlap them (or the built-in gate split) are refused. ``max_drop`` (openvino-int8
    only) builds that variant with NNCF's accuracy control on those tasks, else on the selection split's
    (``accuracy_control``); it is gated afterwards like any other.
    """
    names = expand(names)
    accuracy_control.check_max_drop(max_drop, names, manifest.kind)
    buckets = shape_variants.check_buckets(manifest, static_shapes) if static_shapes else None
    if buckets and not any(n.startswith("openvino") for n in names) and not any(
            s.format == "openvino" for s in manifest.variants.values()):
        raise InputValidationError("--static-shapes reshapes OpenVINO IRs and this bundle has none: add one, "
                                   "e.g. --variants openvino (or openvino-int8).")
    eval_tasks = list(eval_tasks)
    if eval_tasks and manifest.kind != "sentence-transformer":
        raise InputValidationError(f"--eval-ir / --eval-sts gate SentenceTransformer variants, not a {manifest.kind} "
                                   "(a cross-encoder is gated on the built-in reranking task; score yours with "
                                   "`st-runtime evaluate`).")
    user_calibration = bool(calibration)
    if calibration:
        check_calibration(calibration, eval_tasks)
    calibration = list(calibration) if calibration else _default_calibration(manifest.kind)
    ctx = BuildContext(root=root, manifest=manifest, calibration=calibration,
                       model_type=str(manifest.architecture.get("model_type") or ""))
    keeper = _Gatekeeper(source.model, manifest.kind, ctx, progress, eval_tasks, max_drop)
    refused = dict(manifest.parity.get("refused_variants", {}))
    for name in names:
        progress(f"building {name}")
        try:
            spec, info = keeper.build(name, force)
        except ImportError as exc:
            raise ExportError(f"Variant {name!r} needs a library that is not installed: {exc}") from exc
        if spec is None:
            refused[name] = info
        else:
            manifest.variants[name] = spec
            refused.pop(name, None)
    for base, shapes in _static_targets(manifest, names, buckets).items():
        progress(f"building {shape_variants.static_name(base)} ({','.join(b.label for b in shapes)})")
        spec, info = keeper.build_static(base, shapes, force)
        if spec is None:
            refused[shape_variants.static_name(base)] = info
        else:
            manifest.variants[shape_variants.static_name(base)] = spec
            refused.pop(shape_variants.static_name(base), None)
    if refused:
        manifest.parity["refused_variants"] = refused
    manifest.parity["splits"] = {
        "calibration": "user file" if user_calibration else "pydoc topics, calibration split",
        "selection": "pydoc topics + stdlib docstrings, selection split (chooses fp32 layers of the fallback)",
        "gate": "pydoc topics + stdlib docstrings, gate split (reported, decides the gate)",
        "user_tasks": [task.name for task in eval_tasks],
    }
    return finish_manifest(root, manifest)


def _static_targets(manifest: Manifest, built: Sequence[str], buckets) -> dict[str, list]:
    """OpenVINO variants that get a static-shape sibling: all of them with ``buckets``; otherwise the rebuilt ones
    that had a sibling (with its recorded shapes, since the rebuilt ``.bin`` it shared is new)."""
    from st_runtime.shape_buckets import parse_shapes

    out = {}
    for name, spec in list(manifest.variants.items()):
        if spec.format != "openvino" or shape_variants.is_static(spec):
            continue
        sibling = manifest.variants.get(shape_variants.static_name(name))
        if buckets:
            out[name] = buckets
        elif sibling is not None and name in built:
            out[name] = parse_shapes([[e["batch"], e["length"]] for e in sibling.settings["static_shapes"]])
    return out


def _sparse_selection(st: Any):
    """The sparse encoder's torch outputs on the selection split (what its fp32 fallback chooses layers on)."""
    queries, passages = gates.held_out_texts(100, 200, "selection")
    return sparse_gates.SparseHeldOut(queries, passages,
                                      sparse_gates._dense(st.encode_query(queries, batch_size=32)),
                                      sparse_gates._dense(st.encode_document(passages, batch_size=32)))


def check_calibration(calibration: Sequence, eval_tasks: Sequence = ()) -> None:
    """Refuse calibration texts that overlap the user's evaluation data or the built-in gate split."""
    from st_runtime import corpus

    for task in eval_tasks:
        tasks.check_no_overlap(calibration, tasks.task_texts(task), f"the evaluation data of {task.name}")
    n_queries, n_passages = gates.SPLIT_SIZES["gate"]
    builtin = [*gates.held_out_texts(n_queries, n_passages, "gate")[0], *corpus.split_sentences("gate"),
               *tasks.task_texts(tasks.builtin_ir_task("gate"))]
    tasks.check_no_overlap(calibration, builtin, "the built-in gate split")


def _default_calibration(kind: str) -> list:
    from st_runtime import corpus

    if kind == "cross-encoder":
        return corpus.query_passage_pairs(200, seed=3001, split="calibration")
    return gates.calibration_texts(300)


def quantize_bundle(bundle_path: str | Path, names: Sequence[str], *, calibration: Sequence[str] | None = None,
                    force: bool = False, model: str | None = None, progress=lambda _: None,
                    eval_tasks: Sequence = (), trust_remote_code: bool = False,
                    static_shapes: str | Sequence | None = None, max_drop: float | None = None) -> Path:
    """Add variants to an existing bundle: copy it to a staging folder, build, and swap it in atomically.

    A source model with its own modeling code is refused (before any of it is imported) unless
    ``trust_remote_code``, as ``export_model`` does. ``static_shapes`` and ``max_drop`` as in ``add_variants``."""
    from .source import load_source

    bundle = Bundle.open(bundle_path, verify="all")
    manifest = bundle.manifest
    if manifest.graph_routes():
        raise ExportError(f"{str(bundle.root)!r} is a Router bundle with a graph per route; st-runtime does not add "
                          "variants to it afterwards (each route would need its own gate). Re-export the model with "
                          "--variants openvino (exact) instead.")
    accuracy_control.check_max_drop(max_drop, expand(names), manifest.kind)  # before the source model loads
    target = model or manifest.source.get("path") or manifest.source.get("model")
    source = load_source(target, kind=manifest.kind, trust_remote_code=trust_remote_code)
    dest = bundle.root
    with bundle_writer.staging_dir(dest, overwrite=True) as tmp:
        shutil.rmtree(tmp)
        shutil.copytree(dest, tmp)
        add_variants(source, tmp, manifest, names, calibration=calibration, force=force, progress=progress,
                     eval_tasks=eval_tasks, static_shapes=static_shapes, max_drop=max_drop)
        seal(tmp, manifest)
        bundle_writer.commit(tmp, dest)
    return dest
