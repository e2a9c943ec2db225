"""Read a loaded torch model's settings into manifest sections (the runtime obeys only these)."""

from __future__ import annotations

from importlib import metadata
from typing import Any

from st_runtime.errors import UnsupportedModelError
from st_runtime.manifest import EmbeddingSpec, TokenizerSpec

_POSITION_OFFSET_TYPES = {"roberta", "xlm-roberta", "camembert", "mpnet", "longformer", "xlm-roberta-xl"}
_NO_LIMIT = 10**8


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and 0 < value < _NO_LIMIT else None


def tokenizer_spec(tokenizer: Any, config: Any, max_seq_length: int | None, do_lower_case: bool) -> TokenizerSpec:
    """Truncation, padding and special tokens of a Hugging Face tokenizer, as the runtime needs them."""
    positions = _int_or_none(getattr(config, "max_position_embeddings", None))
    if positions and getattr(config, "model_type", "") in _POSITION_OFFSET_TYPES:
        positions -= 2
    if tokenizer.pad_token is None:
        raise UnsupportedModelError(
            "The tokenizer has no pad token, so batches cannot be padded. Set one and save the model before exporting, "
            "e.g. model.tokenizer.pad_token = model.tokenizer.eos_token; model.save(PATH)."
        )
    return TokenizerSpec(
        file="tokenizer.json",
        max_seq_length=_int_or_none(max_seq_length),
        do_lower_case=bool(do_lower_case),
        padding_side=tokenizer.padding_side,
        truncation_side=tokenizer.truncation_side,
        pad_token=str(tokenizer.pad_token),
        pad_token_id=int(tokenizer.pad_token_id),
        special_token_ids=sorted(int(i) for i in tokenizer.all_special_ids),
        model_max_length=positions,
    )


def embedding_spec(model: Any, module_names: list[str]) -> EmbeddingSpec:
    """Pooling, prompts, similarity and dimension of a SentenceTransformer."""
    pooling = next((m for m in model if type(m).__name__ == "Pooling"), None)
    mode = getattr(pooling, "pooling_mode", "none") if pooling is not None else "none"
    return EmbeddingSpec(
        dimension=int(getattr(model, "get_embedding_dimension", model.get_sentence_embedding_dimension)()),
        similarity_fn_name=getattr(model, "_similarity_fn_name", None) or None,
        prompts={k: v for k, v in (model.prompts or {}).items()},
        default_prompt_name=model.default_prompt_name,
        truncate_dim=model.truncate_dim,
        pooling_mode=list(mode) if isinstance(mode, (list, tuple)) else mode,
        include_prompt=bool(getattr(pooling, "include_prompt", True)),
        normalized="Normalize" in module_names,
        modules=module_names,
    )


def architecture(config: Any) -> dict[str, Any]:
    return {
        "model_type": getattr(config, "model_type", None),
        "architectures": list(getattr(config, "architectures", None) or []),
        "hidden_size": getattr(config, "hidden_size", getattr(config, "d_model", None)),
        "num_hidden_layers": getattr(config, "num_hidden_layers", getattr(config, "num_layers", None)),
        "num_attention_heads": getattr(config, "num_attention_heads", getattr(config, "num_heads", None)),
    }


def library_versions() -> dict[str, str]:
    versions = {}
    for dist in ("st-runtime", "torch", "transformers", "sentence-transformers", "onnx", "onnxruntime",
                 "openvino", "nncf", "tokenizers", "numpy"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return versions
