"""Export a SentenceTransformer or CrossEncoder into a verified bundle: trace, check parity, write atomically."""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from st_runtime import corpus
from st_runtime.manifest import Manifest, VariantSpec

from . import bundle_writer, parity
from .graph import EMBEDDING_OUTPUTS, EmbeddingGraph, check_modules, eager_attention, export_onnx, graph_io
from .source import SourceModel, load_source
from .specs import architecture, embedding_spec, library_versions, tokenizer_spec

logger = logging.getLogger(__name__)
FP32_ATOL = 1e-5
_TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def example_inputs(model: Any, texts: Sequence[Any]) -> dict[str, torch.Tensor]:
    """Tokenized example batch with only the tensors the model's tokenizer produces."""
    features = model.preprocess(list(texts))
    return {k: features[k] for k in _TOKEN_INPUTS if k in features and isinstance(features[k], torch.Tensor)}


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
    trust_remote_code: bool = False,
) -> Path:
    """Export ``model`` (folder, packaged model or Hub id; None = all-MiniLM-L6-v2) to the bundle folder ``out``.

    The fp32 graph is always written and must match torch within ``atol``; ``variants`` adds optimized
    and quantized graphs, each behind its accuracy gate. Any failure leaves nothing at ``out``. A model with its
    own modeling code (``auto_map``) is refused unless ``trust_remote_code``; that code runs only here, to trace.
    """
    started = time.perf_counter()
    progress(f"loading {model or 'the default model (all-MiniLM-L6-v2)'}")
    source = load_source(model, trust_remote_code=trust_remote_code)
    with bundle_writer.staging_dir(Path(out), overwrite) as tmp:
        if source.kind == "cross-encoder":
            from .cross_encoder import write_cross_encoder

            manifest = write_cross_encoder(source, tmp, parity_texts, atol, progress)
        else:
            manifest = write_embedding(source, tmp, parity_texts, atol, progress)
        if variants:
            from .variants import add_variants

            add_variants(source, tmp, manifest, variants, calibration=calibration, force=force, progress=progress)
        seal(tmp, manifest)
        final = bundle_writer.commit(tmp, Path(out))
    progress(f"wrote {final} in {time.perf_counter() - started:.1f} s")
    return final


def seal(tmp: Path, manifest: Manifest) -> Manifest:
    """Last step before commit: ONNX weights into external data files, then checksums of the final files."""
    bundle_writer.externalize_weights(tmp)
    for spec in manifest.variants.values():
        if spec.format == "onnx" and (tmp / f"{spec.file}.data").is_file():
            spec.weights_file = f"{spec.file}.data"
    return finish_manifest(tmp, manifest)


def finish_manifest(tmp: Path, manifest: Manifest) -> Manifest:
    """Record checksums of every file in the staging folder and write the manifest."""
    manifest.files = bundle_writer.file_entries(tmp)
    manifest.validate()
    manifest.write(tmp)
    return manifest


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


def trace_into_bundle(source: SourceModel, tmp: Path, graph: torch.nn.Module, example: dict[str, torch.Tensor],
                      output_names: list[str], arch: dict[str, Any], **section: Any) -> Manifest:
    """Trace ``graph`` to ``tmp/model.onnx``, save the model's tokenizer, and write the fp32 manifest."""
    model = source.model
    graph_path = tmp / "model.onnx"
    # Left-padded models (decoders) return their pad rows in token_embeddings, and those rows differ
    # between attention implementations: they keep the model's own.
    switch = getattr(model.tokenizer, "padding_side", "right") == "right"
    with eager_attention(graph) if switch else contextlib.nullcontext():
        export_onnx(graph, example, output_names, graph_path, str(arch["model_type"]))
    inputs, outputs = graph_io(graph_path)
    model.tokenizer.backend_tokenizer.save(str(tmp / "tokenizer.json"))
    manifest = Manifest(
        kind=source.kind,
        tokenizer=tokenizer_spec(model.tokenizer, model[0].auto_model.config, model.max_seq_length,
                                 getattr(model[0], "do_lower_case", False)),
        variants={"onnx": VariantSpec(file="model.onnx", inputs=inputs, outputs=outputs,
                                      settings={"auto_rank": 1, "opset": 17})},
        default_variant="onnx",
        files={},
        source={"model": source.name, "path": source.path,
                **({"trust_remote_code": True} if source.trust_remote_code else {})},
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
    checks = {}
    reference = st.encode(texts, batch_size=32, convert_to_numpy=True)
    main = parity.compare(reference, runtime.encode(texts, batch_size=32))
    parity.require(main, atol, "sentence_embedding")
    for name, prompt in runtime.prompts.items():
        if prompt:
            sub = texts[:48]
            report = parity.compare(st.encode(sub, prompt_name=name), runtime.encode(sub, prompt_name=name))
            parity.require(report, atol, f"sentence_embedding with prompt {name!r}")
            checks[f"prompt:{name}"] = report.max_abs
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
