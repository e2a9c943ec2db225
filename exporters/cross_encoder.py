"""Cross-encoder export: tokenized pairs -> logits, with ST's activation recorded in the manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from st_runtime import corpus
from st_runtime.errors import UnsupportedModelError
from st_runtime.manifest import CrossEncoderSpec, Manifest

from . import parity
from .bundle_steps import example_inputs, record_parity, trace_into_bundle
from .graph import CROSS_ENCODER_OUTPUTS, CrossEncoderGraph, check_modules
from .source import SourceModel
from .specs import architecture

_ACTIVATIONS = {"Sigmoid": "sigmoid", "Identity": "identity", "Tanh": "tanh", "Softmax": "softmax", "ReLU": "relu"}


def activation_name(activation_fn: Any) -> str:
    """Manifest name of ST's activation module (None counts as identity)."""
    if activation_fn is None:
        return "identity"
    name = type(activation_fn).__name__
    if name not in _ACTIVATIONS:
        raise UnsupportedModelError(
            f"The cross-encoder's activation {name} has no torch-free equivalent; supported: {sorted(_ACTIVATIONS)}."
        )
    return _ACTIVATIONS[name]


def default_pairs(max_seq_length: int | None, n: int = 200) -> list[tuple[str, str]]:
    """Real (query, passage) pairs; every tenth passage is longer than max_seq_length."""
    pairs = corpus.query_passage_pairs(n)
    long_words = int(min(max(600, 1.3 * (max_seq_length or 512)), 12000))
    long = corpus.passages(n // 10, seed=11, min_words=long_words, max_words=long_words + 100)
    for i, passage in enumerate(long):
        pairs[i * 10] = (pairs[i * 10][0], passage)
    return pairs


def write_cross_encoder(source: SourceModel, tmp: Path, pairs: Sequence | None, atol: float, progress) -> Manifest:
    """Trace a CrossEncoder into ``tmp/model.onnx`` with tokenizer and manifest, then prove parity."""
    ce = source.model
    check_modules(ce)
    config = ce[0].auto_model.config
    labels = [str(config.id2label[i]) for i in range(ce.num_labels)] if getattr(config, "id2label", None) else []
    spec = CrossEncoderSpec(num_labels=int(ce.num_labels), activation=activation_name(ce.activation_fn), labels=labels,
                            prompts=dict(getattr(ce, "prompts", None) or {}),
                            default_prompt_name=getattr(ce, "default_prompt_name", None))
    example = example_inputs(ce, [("A short query", "A passage that answers it."),
                                  ("Another query with more words", "Short.")])
    arch = architecture(config)
    progress(f"tracing {arch['model_type']} cross-encoder ({spec.num_labels} label(s)) to ONNX")
    manifest = trace_into_bundle(source, tmp, CrossEncoderGraph(ce, list(example)), example, CROSS_ENCODER_OUTPUTS,
                                 arch, cross_encoder=spec)
    progress("checking parity with torch")
    report = cross_encoder_parity(ce, tmp, pairs, atol)
    return record_parity(tmp, manifest, report, "sentence_transformers.CrossEncoder logits (torch fp32)", atol,
                         progress)


def cross_encoder_parity(ce: Any, bundle_dir: Path, pairs: Sequence | None, atol: float,
                         variant: str | None = None) -> dict[str, Any]:
    """Compare raw logits and activated scores with torch; raise ParityError on a miss."""
    from st_runtime.cross_encoder import CrossEncoder

    pairs = [tuple(p) for p in pairs] if pairs is not None else default_pairs(ce.max_seq_length)
    runtime = CrossEncoder(bundle_dir, variant=variant, verify=False)
    for start in range(0, len(pairs), 32):
        batch = pairs[start : start + 32]
        parity.check_tokenization(ce.preprocess(list(batch)), runtime.tokenizer(batch), "the parity pairs")
    identity = torch.nn.Identity()
    logits = ce.predict(pairs, activation_fn=identity, batch_size=32)
    ours = runtime.predict(pairs, activation_fn="identity", batch_size=32)
    report = parity.compare(np.reshape(logits, (len(pairs), -1)), np.reshape(ours, (len(pairs), -1)))
    parity.require(report, atol, "cross-encoder logits")
    scores = ce.predict(pairs[:64], batch_size=32)
    activated = parity.compare(np.reshape(scores, (64, -1)), np.reshape(runtime.predict(pairs[:64]), (64, -1)))
    parity.require(activated, atol, "cross-encoder scores after activation")
    result = report.as_dict()
    result["checks"] = {"activated": activated.max_abs}
    if ce.num_labels == 1:
        result["rank_agreement"] = float(np.mean(np.argsort(-logits.ravel()) == np.argsort(-ours.ravel())))
    return result
