"""Add optimized / quantized variants to a bundle, each behind its accuracy gate, with fp32 fallback for int8."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any, Callable, Sequence

from st_runtime.bundle import Bundle
from st_runtime.errors import ExportError, InputValidationError
from st_runtime.manifest import Manifest, VariantSpec

from . import bundle_writer, gates, sparse_gates
from .bundle_steps import finish_manifest, seal
from .calibration import roles, weight_matmuls
from .onnx_variants import (
    BuildContext,
    build_onnx_fp16,
    build_onnx_int8_dynamic,
    build_onnx_int8_static,
    build_onnx_opt,
)
from .openvino_variants import (
    build_openvino,
    build_openvino_bf16,
    build_openvino_fp16,
    build_openvino_int8,
    build_openvino_int8_weights,
)

logger = logging.getLogger(__name__)
Builder = Callable[[BuildContext, Sequence[str]], VariantSpec]

BUILDERS: dict[str, Builder] = {
    "onnx-opt": build_onnx_opt,
    "onnx-fp16": build_onnx_fp16,
    "onnx-int8-dynamic": build_onnx_int8_dynamic,
    "onnx-int8-static": build_onnx_int8_static,
    "openvino": build_openvino,
    "openvino-fp16": build_openvino_fp16,
    "openvino-bf16": build_openvino_bf16,
    "openvino-int8": build_openvino_int8,
    "openvino-int8-wo": build_openvino_int8_weights,
}
FALLBACK = {"onnx-int8-dynamic", "onnx-int8-static", "openvino-int8", "openvino-int8-wo"}


def expand(names: Sequence[str]) -> list[str]:
    """Validate variant names; 'all' means every builder."""
    if "all" in names:
        return list(BUILDERS)
    unknown = [n for n in names if n not in BUILDERS]
    if unknown:
        raise InputValidationError(f"Unknown variants {unknown}; choose from {list(BUILDERS)} or 'all'.")
    return list(dict.fromkeys(names))


class _Gatekeeper:
    """Builds a variant, measures it against torch on held-out text, and keeps it only if its gate holds."""

    def __init__(self, source_model: Any, kind: str, ctx: BuildContext, progress) -> None:
        self.kind, self.ctx, self.progress = kind, ctx, progress
        if kind == "cross-encoder":
            self.reference = gates.cross_encoder_reference(source_model)
            self.defaults = gates.CROSS_ENCODER_GATES
        elif kind == "sparse-encoder":
            self.reference = sparse_gates.sparse_reference(source_model)
            self.defaults = sparse_gates.SPARSE_GATES
        else:
            self.reference = gates.embedding_reference(source_model)
            self.defaults = gates.DEFAULT_GATES

    def measure(self, name: str, spec: VariantSpec) -> dict[str, float]:
        self.ctx.manifest.variants[name] = spec
        finish_manifest(self.ctx.root, self.ctx.manifest)
        if self.kind == "cross-encoder":
            return gates.measure_cross_encoder_variant(self.reference, self.ctx.root, name)
        if self.kind == "sparse-encoder":
            return sparse_gates.measure_sparse_variant(self.reference, self.ctx.root, name)
        return gates.measure_embedding_variant(self.reference, self.ctx.root, name)

    def gate_for(self, spec: VariantSpec) -> dict[str, float]:
        key = "fp32" if spec.precision == "fp32" and spec.settings.get("exact") else spec.precision
        return dict(self.defaults.get(key, self.defaults["int8"]))

    def build(self, name: str, force: bool) -> tuple[VariantSpec | None, dict]:
        builder = BUILDERS[name]
        spec = builder(self.ctx, ())
        gate = self.gate_for(spec)
        figures = self.measure(name, spec)
        self.progress(f"{name}: {gates.describe(figures, gate)}")
        if not gates.passes(figures, gate) and name in FALLBACK:
            spec, figures = self._fallback(name, builder, gate, figures)
        passed = gates.passes(figures, gate)
        spec.accuracy = {**figures, "gate": gate, "passed": passed, "reference": "torch fp32, held-out texts"}
        if passed or force:
            if not passed:
                spec.settings["forced"] = True
                self.progress(f"{name}: MISSED its gate, written because --force was given")
            return spec, figures
        self._remove(name, spec)
        self.progress(f"{name}: REFUSED, it misses its gate ({gates.describe(figures, gate)}); use --force to keep it")
        return None, {"figures": figures, "gate": gate}

    def _fallback(self, name: str, builder: Builder, gate: dict, figures: dict) -> tuple[VariantSpec, dict]:
        """Keep the MatMul roles whose quantization hurts most in fp32 until the gate holds (or all are tried)."""
        groups = roles(weight_matmuls(self.ctx.fp32))
        key = "spearman" if self.kind == "cross-encoder" else "top10_overlap"
        gains = {}
        for role, nodes in groups.items():
            trial = self.measure(name, builder(self.ctx, nodes))
            gains[role] = trial.get(key, 0) + trial.get("mean_cosine", 0)
        excluded: list[str] = []
        spec = None
        for role in sorted(gains, key=gains.get, reverse=True)[: max(1, len(groups) - 1)]:
            excluded += groups[role]
            spec = builder(self.ctx, excluded)
            figures = self.measure(name, spec)
            self.progress(f"{name}: {len(excluded)} MatMuls kept in fp32 -> {gates.describe(figures, gate)}")
            if gates.passes(figures, gate):
                break
        return spec, figures

    def _remove(self, name: str, spec: VariantSpec) -> None:
        self.ctx.manifest.variants.pop(name, None)
        for rel in (spec.file, spec.weights_file):
            if rel and (self.ctx.root / rel).exists():
                (self.ctx.root / rel).unlink()


def add_variants(source: Any, root: Path, manifest: Manifest, names: Sequence[str], *,
                 calibration: Sequence[str] | None = None, force: bool = False, progress=lambda _: None) -> Manifest:
    """Build ``names`` into the staging folder ``root`` next to the fp32 graph and record them in the manifest."""
    names = expand(names)
    calibration = list(calibration) if calibration else _default_calibration(manifest.kind)
    ctx = BuildContext(root=root, manifest=manifest, calibration=calibration,
                       model_type=str(manifest.architecture.get("model_type") or ""))
    keeper = _Gatekeeper(source.model, manifest.kind, ctx, progress)
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
    if refused:
        manifest.parity["refused_variants"] = refused
    return finish_manifest(root, manifest)


def _default_calibration(kind: str) -> list:
    texts = gates.calibration_texts(300)
    if kind == "cross-encoder":
        from st_runtime import corpus

        return corpus.query_passage_pairs(200, seed=3001)
    return texts


def quantize_bundle(bundle_path: str | Path, names: Sequence[str], *, calibration: Sequence[str] | None = None,
                    force: bool = False, model: str | None = None, progress=lambda _: None) -> Path:
    """Add variants to an existing bundle: copy it to a staging folder, build, and swap it in atomically."""
    from .source import load_source

    bundle = Bundle.open(bundle_path, verify="all")
    manifest = bundle.manifest
    target = model or manifest.source.get("path") or manifest.source.get("model")
    source = load_source(target, kind=manifest.kind)
    dest = bundle.root
    with bundle_writer.staging_dir(dest, overwrite=True) as tmp:
        shutil.rmtree(tmp)
        shutil.copytree(dest, tmp)
        add_variants(source, tmp, manifest, names, calibration=calibration, force=force, progress=progress)
        seal(tmp, manifest)
        bundle_writer.commit(tmp, dest)
    return dest
