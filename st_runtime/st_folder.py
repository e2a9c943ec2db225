"""Open a Sentence Transformers model folder that already holds a transformer-only graph
(``onnx/model*.onnx`` from ST's ``backend="onnx"`` / optimum, or ``openvino/openvino_model*.xml``) and run
Pooling / Dense / Normalize in numpy. The folder's configs become an in-memory manifest; nothing is exported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .backends import GraphSession, open_session
from .engine import GraphRunner
from .errors import BundleError, IntegrityError
from .manifest import EmbeddingSpec, Manifest, TokenizerSpec, VariantSpec
from .pooling import Dense, pool
from .similarity import normalize_embeddings
from .tokenization import TextTokenizer

_LEGACY_MODES = {"pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max", "pooling_mode_mean_tokens": "mean",
                 "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
                 "pooling_mode_weightedmean_tokens": "weightedmean", "pooling_mode_lasttoken": "lasttoken"}


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def is_st_folder(path: Path) -> bool:
    return (path / "modules.json").is_file() and bool(_graph_files(path))


def _graph_files(path: Path) -> list[Path]:
    return sorted((path / "onnx").glob("*.onnx")) + sorted((path / "openvino").glob("*.xml"))


def _pick_graph(path: Path, file_name: str | None) -> Path:
    files = _graph_files(path)
    if file_name:
        chosen = [f for f in files if f.relative_to(path).as_posix() == file_name or f.name == file_name]
        if not chosen:
            raise BundleError(f"No graph {file_name!r} in {path}; found {[f.relative_to(path).as_posix() for f in files]}.")
        return chosen[0]
    for default in ("onnx/model.onnx", "openvino/openvino_model.xml"):
        if (path / default).is_file():
            return path / default
    if len(files) == 1:
        return files[0]
    raise BundleError(
        f"{path} holds several graphs {[f.relative_to(path).as_posix() for f in files]}; choose one with file_name=..."
    )


def _pooling_modes(config: dict) -> list[str]:
    mode = config.get("pooling_mode")
    if mode is None:
        mode = [m for key, m in _LEGACY_MODES.items() if config.get(key)] or ["mean"]
    return [mode] if isinstance(mode, str) else list(mode)


def _dense(module_dir: Path) -> Dense:
    config = _json(module_dir / "config.json")
    weights_file = module_dir / "model.safetensors"
    if not weights_file.is_file():
        raise BundleError(
            f"{module_dir} has no model.safetensors; st-runtime never unpickles pytorch_model.bin. Re-save the "
            "model with sentence-transformers (safetensors is the default)."
        )
    from safetensors.numpy import load_file

    tensors = load_file(str(weights_file))
    activation = str(config.get("activation_function", "torch.nn.modules.linear.Identity")).rsplit(".", 1)[-1]
    return Dense(tensors["linear.weight"], tensors.get("linear.bias"), activation)


class PostProcessedSession:
    """A transformer-only graph followed by numpy Pooling / Dense / Normalize: same contract as a fused graph."""

    def __init__(self, inner: GraphSession, modes: list[str], dense: list[Dense], normalized: bool,
                 prompt_aware: bool) -> None:
        self._inner, self._modes, self._dense, self._normalized = inner, modes, dense, normalized
        self.input_names = list(inner.input_names) + (["prompt_length"] if prompt_aware else [])
        self.output_names = ["sentence_embedding", "token_embeddings"]
        self.description = f"{inner.description} + numpy pooling"

    def run(self, feeds: dict[str, np.ndarray], outputs=None) -> dict[str, np.ndarray]:
        prompt_length = int(feeds["prompt_length"][0]) if "prompt_length" in feeds else 0
        outputs = self._inner.run({k: v for k, v in feeds.items() if k != "prompt_length"})
        tokens = outputs.get("last_hidden_state", outputs.get("token_embeddings", next(iter(outputs.values()))))
        embedding = pool(tokens, feeds["attention_mask"], self._modes, prompt_length)
        for layer in self._dense:
            embedding = layer(embedding)
        if self._normalized:
            embedding = normalize_embeddings(embedding)
        return {"sentence_embedding": embedding.astype(np.float32, copy=False), "token_embeddings": tokens}


def open_st_folder(path: Path, file_name: str | None = None, device: str | None = None, threads: int | None = None
                   ) -> tuple[str, GraphRunner, Manifest]:
    """(variant name, runner, in-memory manifest) for a Sentence Transformers folder with an exported transformer."""
    modules = _json(path / "modules.json")
    types = [m["type"].rsplit(".", 1)[-1] for m in modules]
    if not types or types[0] != "Transformer":
        raise BundleError(f"{path}: the first module is {types[:1]}, expected a Transformer.")
    modes: list[str] = ["mean"]
    include_prompt = True
    dense: list[Dense] = []
    for module, kind in zip(modules[1:], types[1:]):
        module_dir = path / module.get("path", "")
        if kind == "Pooling":
            config = _json(module_dir / "config.json")
            modes, include_prompt = _pooling_modes(config), bool(config.get("include_prompt", True))
        elif kind == "Dense":
            dense.append(_dense(module_dir))
        elif kind not in ("Normalize", "Dropout"):
            raise BundleError(f"{path}: module {kind} cannot run without torch; export the model with st-runtime.")
    graph = _pick_graph(path, file_name)
    weights = graph.with_suffix(".bin") if graph.suffix == ".xml" else None
    if weights is not None and not weights.is_file():
        raise IntegrityError(f"{graph} has no weights file {weights.name} next to it.")
    st_config, sbert, tok_config = (_json(path / "config_sentence_transformers.json"),
                                    _json(path / "sentence_bert_config.json"), _json(path / "tokenizer_config.json"))
    hf_config = _json(path / "config.json")
    pad_token = tok_config.get("pad_token", "[PAD]")
    pad_token = pad_token.get("content") if isinstance(pad_token, dict) else pad_token
    tokenizer_file = path / "tokenizer.json"
    if not tokenizer_file.is_file():
        raise IntegrityError(f"{path} has no tokenizer.json; save the model with a fast tokenizer.")
    from tokenizers import Tokenizer

    backend_tok = Tokenizer.from_file(str(tokenizer_file))
    pad_id = backend_tok.token_to_id(pad_token) if pad_token else None
    specials = sorted(i for i, t in backend_tok.get_added_tokens_decoder().items() if t.special)
    limits = [v for v in (sbert.get("max_seq_length"), tok_config.get("model_max_length"),
                          hf_config.get("max_position_embeddings")) if isinstance(v, (int, float)) and 0 < v < 10**8]
    max_len = int(sbert["max_seq_length"]) if sbert.get("max_seq_length") else (int(min(limits)) if limits else None)
    spec = TokenizerSpec(
        max_seq_length=max_len, do_lower_case=bool(sbert.get("do_lower_case", False)),
        padding_side=tok_config.get("padding_side", "right"), truncation_side=tok_config.get("truncation_side", "right"),
        pad_token=pad_token or "[PAD]", pad_token_id=int(pad_id or 0), special_token_ids=specials,
    )
    fmt = "openvino" if graph.suffix == ".xml" else "onnx"
    inner = open_session(graph, fmt, device=device, threads=threads)
    session = PostProcessedSession(inner, modes, dense, "Normalize" in types, prompt_aware=not include_prompt)
    hidden = int(hf_config.get("hidden_size") or hf_config.get("d_model") or 0)
    dimension = dense[-1].weight_t.shape[1] if dense else hidden * len(modes)
    name = graph.relative_to(path).as_posix()
    files = {name: {}, "tokenizer.json": {}} | ({weights.relative_to(path).as_posix(): {}} if weights else {})
    manifest = Manifest(
        kind="sentence-transformer", tokenizer=spec,
        variants={name: VariantSpec(file=name, format=fmt, inputs=session.input_names, outputs=session.output_names)},
        default_variant=name, files=files,
        embedding=EmbeddingSpec(dimension=dimension, similarity_fn_name=st_config.get("similarity_fn_name"),
                                prompts=dict(st_config.get("prompts") or {}),
                                default_prompt_name=st_config.get("default_prompt_name"),
                                pooling_mode=modes if len(modes) > 1 else modes[0], include_prompt=include_prompt,
                                normalized="Normalize" in types, modules=types),
        source={"model": str(path), "loaded_as": "sentence-transformers folder"},
    )
    if spec.do_lower_case:
        _ensure_lowercase(backend_tok)
    return name, GraphRunner(TextTokenizer(backend_tok, spec), session), manifest


def _ensure_lowercase(tokenizer: Any) -> None:
    """ST adds a Lowercase normalizer when do_lower_case is set; do the same on the raw tokenizer.json."""
    from tokenizers import normalizers

    current = tokenizer.normalizer
    if current is not None and "Lowercase" in repr(current):
        return
    tokenizer.normalizer = normalizers.Sequence([normalizers.Lowercase()] + ([current] if current else []))
