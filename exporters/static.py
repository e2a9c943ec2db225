"""StaticEmbedding export: no graph. The embedding table goes to safetensors, the tokenizer is saved as it encodes
(without special tokens), and the runtime's numpy embedding bag is checked against sentence-transformers."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from st_runtime import corpus
from st_runtime.errors import ParityError, UnsupportedModelError
from st_runtime.manifest import EmbeddingSpec, Manifest, TokenizerSpec, VariantSpec
from st_runtime.static_embedding import FORMAT, WEIGHT_KEY

from . import parity
from .bundle_steps import finish_manifest
from .source import SourceModel
from .specs import library_versions

WEIGHTS_FILE = "static_embedding.safetensors"
_SUPPORTED = (["StaticEmbedding"], ["StaticEmbedding", "Normalize"])


def is_static(model: Any) -> bool:
    """Whether a SentenceTransformer starts with a StaticEmbedding module."""
    return len(model) > 0 and type(model[0]).__name__ == "StaticEmbedding"


def _save_tokenizer(tokenizer: Any, path: Path) -> int | None:
    """Save the tokenizer without post-processor (so plain encoding adds no special tokens) and padding; return
    its truncation length, which sentence-transformers keeps from the saved tokenizer."""
    data = json.loads(tokenizer.to_str())
    data["post_processor"] = None
    data["padding"] = None
    truncation = data.get("truncation") or {}
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return int(truncation["max_length"]) if truncation.get("max_length") else None


def write_static(source: SourceModel, tmp: Path, texts: Sequence[str] | None, atol: float, progress) -> Manifest:
    """Write a StaticEmbedding SentenceTransformer as a graph-free bundle and prove parity."""
    from safetensors.numpy import save_file

    st = source.model
    names = [type(m).__name__ for m in st]
    if names not in _SUPPORTED:
        raise UnsupportedModelError(f"StaticEmbedding models with modules {names} are not supported; st-runtime runs "
                                    f"{' or '.join(' -> '.join(s) for s in _SUPPORTED)}.")
    module = st[0]
    weights = module.embedding.weight.detach().float().cpu().numpy()
    progress(f"writing the {weights.shape[0]} x {weights.shape[1]} embedding table (no graph)")
    save_file({WEIGHT_KEY: np.ascontiguousarray(weights)}, str(tmp / WEIGHTS_FILE))
    limit = _save_tokenizer(module.tokenizer, tmp / "tokenizer.json")
    normalized = "Normalize" in names
    manifest = Manifest(
        kind="sentence-transformer",
        tokenizer=TokenizerSpec(file="tokenizer.json", max_seq_length=limit, pad_token="", pad_token_id=0),
        variants={"static": VariantSpec(file=WEIGHTS_FILE, format=FORMAT, inputs=["input_ids", "attention_mask"],
                                        outputs=["sentence_embedding", "token_embeddings"],
                                        settings={"normalize": normalized, "exact": True, "auto_rank": 1})},
        default_variant="static",
        files={},
        embedding=EmbeddingSpec(dimension=int(weights.shape[1]),
                                similarity_fn_name=getattr(st, "_similarity_fn_name", None) or None,
                                prompts=dict(st.prompts or {}), default_prompt_name=st.default_prompt_name,
                                truncate_dim=st.truncate_dim, pooling_mode="mean", normalized=normalized,
                                modules=names),
        source={"model": source.name, "path": source.path},
        architecture={"model_type": "static-embedding", "architectures": ["StaticEmbedding"],
                      "vocab_size": int(weights.shape[0]), "hidden_size": int(weights.shape[1])},
        versions=library_versions(),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    finish_manifest(tmp, manifest)
    progress("checking parity with torch")
    report = static_parity(st, tmp, texts, atol)
    manifest.variants["static"].accuracy = report
    manifest.parity = {"reference": "sentence_transformers.SentenceTransformer.encode (StaticEmbedding, torch fp32)",
                       "atol": atol}
    progress(f"parity: max abs {report['max_abs']:.2e} over {report['texts']} inputs")
    return finish_manifest(tmp, manifest)


def static_parity(st: Any, bundle_dir: Path, texts: Sequence[str] | None, atol: float,
                  variant: str | None = None) -> dict[str, Any]:
    """Compare the runtime's numpy embedding bag with ``st.encode`` (plain and with each prompt)."""
    from st_runtime import SentenceTransformer

    texts = list(texts) if texts is not None else corpus.parity_texts(200, long_words=1200)
    runtime = SentenceTransformer(bundle_dir, variant=variant, verify=False)
    expected = [e.ids for e in st[0].tokenizer.encode_batch(texts, add_special_tokens=False)]
    got = [ids for ids, _ in runtime.tokenizer.encode(texts)]
    if expected != got:
        bad = [i for i, (a, b) in enumerate(zip(expected, got)) if a != b][:5]
        raise ParityError(f"The exported tokenizer differs from the StaticEmbedding's on texts {bad}.")
    main = parity.compare(st.encode(texts, batch_size=32), runtime.encode(texts, batch_size=32))
    parity.require(main, atol, "static sentence_embedding")
    checks = parity.prompt_checks(st, runtime, texts[:48], atol, "static sentence_embedding")
    result = main.as_dict()
    result["checks"] = checks
    return result
