"""The steps every export shares, bi-encoder or cross-encoder: example inputs, trace into the staging folder,
record parity, checksum and write the manifest, seal. ``export``, ``cross_encoder`` and ``variants`` all use them;
this module imports none of those (no import cycle)."""

from __future__ import annotations

import contextlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from st_runtime.manifest import Manifest, VariantSpec

from . import bundle_writer
from .graph import eager_attention, export_onnx, graph_io
from .source import SourceModel
from .specs import library_versions, tokenizer_spec

_TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")

Progress = Callable[[str], None]


def example_inputs(model: Any, texts: Sequence[Any]) -> dict[str, torch.Tensor]:
    """Tokenized example batch with only the tensors the model's tokenizer produces."""
    features = model.preprocess(list(texts))
    return {k: features[k] for k in _TOKEN_INPUTS if k in features and isinstance(features[k], torch.Tensor)}


def finish_manifest(tmp: Path, manifest: Manifest) -> Manifest:
    """Record checksums of every file in the staging folder and write the manifest."""
    manifest.files = bundle_writer.file_entries(tmp)
    manifest.validate()
    manifest.write(tmp)
    return manifest


def seal(tmp: Path, manifest: Manifest) -> Manifest:
    """Last step before commit: ONNX weights into external data files, then checksums of the final files."""
    bundle_writer.externalize_weights(tmp)
    for spec in manifest.variants.values():
        if spec.format == "onnx" and (tmp / f"{spec.file}.data").is_file():
            spec.weights_file = f"{spec.file}.data"
    return finish_manifest(tmp, manifest)


def trace_into_bundle(source: SourceModel, tmp: Path, graph: torch.nn.Module, example: dict[str, torch.Tensor],
                      output_names: list[str], arch: dict[str, Any], *, transformer: Any = None,
                      kind: str | None = None, **section: Any) -> Manifest:
    """Trace ``graph`` to ``tmp/model.onnx``, save the tokenizer, and write the fp32 manifest.

    ``transformer`` is the module whose tokenizer and length the bundle takes (default: the model's own, i.e. its
    first module); ``kind`` the manifest kind (default: the source's). ``section`` holds the kind's own manifest
    section (``embedding=``, ``sparse=``, ...).
    """
    model = source.model
    owner = model if transformer is None else transformer
    config = (model[0] if transformer is None else transformer).auto_model.config
    lower = getattr(model[0] if transformer is None else transformer, "do_lower_case", False)
    graph_path = tmp / "model.onnx"
    # Left-padded models (decoders) return their pad rows in token_embeddings, and those rows differ
    # between attention implementations: they keep the model's own.
    switch = getattr(owner.tokenizer, "padding_side", "right") == "right"
    with eager_attention(graph) if switch else contextlib.nullcontext():
        export_onnx(graph, example, output_names, graph_path, str(arch["model_type"]))
    inputs, outputs = graph_io(graph_path)
    owner.tokenizer.backend_tokenizer.save(str(tmp / "tokenizer.json"))
    manifest = Manifest(
        kind=kind or source.kind,
        tokenizer=tokenizer_spec(owner.tokenizer, config, owner.max_seq_length, lower),
        variants={"onnx": VariantSpec(file="model.onnx", inputs=inputs, outputs=outputs,
                                      settings={"auto_rank": 1, "opset": 17})},
        default_variant="onnx",
        files={},
        source={"model": source.name, "path": source.path,
                **({"trust_remote_code": True} if getattr(source, "trust_remote_code", False) else {})},
        architecture=arch,
        versions=library_versions(),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **section,
    )
    return finish_manifest(tmp, manifest)


def record_parity(tmp: Path, manifest: Manifest, report: dict[str, Any], reference: str, atol: float,
                  progress: Progress) -> Manifest:
    """Store the fp32 graph's parity figures in the manifest."""
    manifest.variants["onnx"].accuracy = report
    manifest.parity = {"reference": reference, "atol": atol}
    progress(f"parity: max abs {report['max_abs']:.2e} over {report['texts']} inputs")
    return finish_manifest(tmp, manifest)
