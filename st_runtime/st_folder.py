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
from .manifest import CrossEncoderSpec, EmbeddingSpec, Manifest, TokenizerSpec, VariantSpec
from .pooling import MODES, Dense, pool
from .similarity import SIMILARITY, normalize_embeddings
from .tokenization import TextTokenizer

_LEGACY_MODES = {"pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max", "pooling_mode_mean_tokens": "mean",
                 "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
                 "pooling_mode_weightedmean_tokens": "weightedmean", "pooling_mode_lasttoken": "lasttoken"}


def _json(path: Path, kind: type = dict) -> Any:
    if not path.is_file():
        return kind()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path} is not valid JSON ({exc}); re-save the model with sentence-transformers.") from exc
    if not isinstance(data, kind):
        raise BundleError(f"{path} should hold a JSON {kind.__name__}, got {type(data).__name__}; re-save the model.")
    return data


def is_st_folder(path: Path) -> bool:
    return (path / "modules.json").is_file() and bool(_graph_files(path))


def folder_kind(path: Path) -> str:
    """'cross-encoder' or 'sentence-transformer', read from the folder's config as sentence-transformers does."""
    st_config = _json(path / "config_sentence_transformers.json")
    if st_config.get("model_type") == "CrossEncoder":
        return "cross-encoder"
    return "sentence-transformer"


def _graph_files(path: Path) -> list[Path]:
    return sorted((path / "onnx").glob("*.onnx")) + sorted((path / "openvino").glob("*.xml"))


def _pick_graph(path: Path, file_name: str | None, backend: str = "torch") -> Path:
    files = _graph_files(path)
    if backend not in ("torch", "onnx", "openvino"):
        raise BundleError(f"backend must be 'torch', 'onnx' or 'openvino', got {backend!r}.")
    if backend != "torch" and not file_name:
        files = [f for f in files if f.parent.name == backend]
        if not files:
            raise BundleError(f"{path} has no {backend}/ graph; found {[f.relative_to(path).as_posix() for f in _graph_files(path)]}.")
    if file_name:
        chosen = [f for f in files if f.relative_to(path).as_posix() == file_name or f.name == file_name]
        if not chosen:
            raise BundleError(f"No graph {file_name!r} in {path}; found {[f.relative_to(path).as_posix() for f in files]}.")
        return chosen[0]
    for default in ("onnx/model.onnx", "openvino/openvino_model.xml"):
        if (path / default) in files:
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
    if isinstance(mode, str):
        return [mode]
    if isinstance(mode, list) and mode and all(isinstance(m, str) for m in mode):
        return list(mode)
    raise BundleError(f"pooling_mode must be a name or a list of names, got {mode!r}; fix the Pooling config.json.")


def _dense(module_dir: Path) -> Dense:
    config = _json(module_dir / "config.json")
    weights_file = module_dir / "model.safetensors"
    if not weights_file.is_file():
        raise BundleError(
            f"{module_dir} has no model.safetensors; st-runtime never unpickles pytorch_model.bin. Re-save the "
            "model with sentence-transformers (safetensors is the default)."
        )
    from safetensors.numpy import load_file

    try:
        tensors = load_file(str(weights_file))
        weight = tensors["linear.weight"]
    except KeyError as exc:
        raise BundleError(f"{weights_file} has no 'linear.weight' tensor; re-save the model.") from exc
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own untyped errors
        raise IntegrityError(f"{weights_file} cannot be read ({exc}); re-save the model.") from exc
    activation = str(config.get("activation_function", "torch.nn.modules.linear.Identity")).rsplit(".", 1)[-1]
    return Dense(weight, tensors.get("linear.bias"), activation)


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


def _modules(path: Path) -> tuple[list[dict], list[str]]:
    modules = _json(path / "modules.json", list)
    try:
        types = [str(m["type"]).rsplit(".", 1)[-1] for m in modules]
    except (KeyError, TypeError) as exc:
        raise BundleError(f"{path}/modules.json has an entry without a 'type'; re-save the model.") from exc
    if not types or types[0] != "Transformer":
        raise BundleError(f"{path}: the first module is {types[:1]}, expected a Transformer.")
    return modules, types


def _folder_tokenizer(path: Path, max_length: int | None = None) -> TextTokenizer:
    """The folder's tokenizer.json configured as its Hugging Face tokenizer and sentence_bert_config say."""
    sbert, tok_config = _json(path / "sentence_bert_config.json"), _json(path / "tokenizer_config.json")
    hf_config = _json(path / "config.json")
    pad_token = tok_config.get("pad_token", "[PAD]")
    pad_token = pad_token.get("content") if isinstance(pad_token, dict) else pad_token
    tokenizer_file = path / "tokenizer.json"
    if not tokenizer_file.is_file():
        raise IntegrityError(f"{path} has no tokenizer.json; save the model with a fast tokenizer.")
    from tokenizers import Tokenizer

    try:
        backend_tok = Tokenizer.from_file(str(tokenizer_file))
    except Exception as exc:  # noqa: BLE001 - tokenizers raises untyped errors
        raise IntegrityError(f"{tokenizer_file} cannot be parsed ({exc}); re-save the model's tokenizer.") from exc
    pad_id = backend_tok.token_to_id(pad_token) if isinstance(pad_token, str) else None
    specials = sorted(i for i, t in backend_tok.get_added_tokens_decoder().items() if t.special)
    limits = [v for v in (sbert.get("max_seq_length"), tok_config.get("model_max_length"),
                          hf_config.get("max_position_embeddings")) if isinstance(v, (int, float)) and 0 < v < 10**8]
    max_len = int(sbert["max_seq_length"]) if isinstance(sbert.get("max_seq_length"), int) else \
        (int(min(limits)) if limits else None)
    spec = TokenizerSpec(
        max_seq_length=max_length or max_len, do_lower_case=bool(sbert.get("do_lower_case", False)),
        padding_side=tok_config.get("padding_side", "right"), truncation_side=tok_config.get("truncation_side", "right"),
        pad_token=pad_token if isinstance(pad_token, str) else "[PAD]", pad_token_id=int(pad_id or 0),
        special_token_ids=specials,
    )
    if spec.do_lower_case:
        _ensure_lowercase(backend_tok)
    return TextTokenizer(backend_tok, spec)


def _open_graph(path: Path, file_name: str | None, backend: str, device: str | None, threads: int | None
                ) -> tuple[Path, str, GraphSession, Path | None]:
    graph = _pick_graph(path, file_name, backend)
    weights = graph.with_suffix(".bin") if graph.suffix == ".xml" else None
    if weights is not None and not weights.is_file():
        raise IntegrityError(f"{graph} has no weights file {weights.name} next to it.")
    fmt = "openvino" if graph.suffix == ".xml" else "onnx"
    return graph, fmt, open_session(graph, fmt, device=device, threads=threads), weights


def _files(path: Path, graph: Path, weights: Path | None) -> dict[str, dict]:
    name = graph.relative_to(path).as_posix()
    return {name: {}, "tokenizer.json": {}} | ({weights.relative_to(path).as_posix(): {}} if weights else {})


def _check_kind(path: Path, expected: str) -> None:
    kind = folder_kind(path)
    if kind != expected:
        from .errors import WrongModelKindError

        right = "CrossEncoder" if kind == "cross-encoder" else "SentenceTransformer"
        raise WrongModelKindError(f"{path} holds a {kind} model; open it with st_runtime.{right}.")


def open_st_folder(path: Path, file_name: str | None = None, device: str | None = None, threads: int | None = None,
                   backend: str = "torch") -> tuple[str, GraphRunner, Manifest]:
    """(variant name, runner, in-memory manifest) for a Sentence Transformers folder with an exported transformer."""
    _check_kind(path, "sentence-transformer")
    modules, types = _modules(path)
    modes: list[str] = ["mean"]
    include_prompt = True
    dense: list[Dense] = []
    for module, kind in zip(modules[1:], types[1:]):
        module_dir = path / str(module.get("path", ""))
        if kind == "Pooling":
            config = _json(module_dir / "config.json")
            modes, include_prompt = _pooling_modes(config), bool(config.get("include_prompt", True))
            unknown = [m for m in modes if m not in MODES]
            if unknown:
                raise BundleError(f"{module_dir}: pooling modes {unknown} are not among {MODES}.")
        elif kind == "Dense":
            dense.append(_dense(module_dir))
        elif kind not in ("Normalize", "Dropout"):
            raise BundleError(f"{path}: module {kind} cannot run without torch; export the model with st-runtime.")
    st_config, hf_config = _json(path / "config_sentence_transformers.json"), _json(path / "config.json")
    tokenizer = _folder_tokenizer(path)
    graph, fmt, inner, weights = _open_graph(path, file_name, backend, device, threads)
    session = PostProcessedSession(inner, modes, dense, "Normalize" in types, prompt_aware=not include_prompt)
    hidden = int(hf_config.get("hidden_size") or hf_config.get("d_model") or 0)
    dimension = dense[-1].weight_t.shape[1] if dense else hidden * len(modes)
    name = graph.relative_to(path).as_posix()
    similarity = st_config.get("similarity_fn_name")
    manifest = Manifest(
        kind="sentence-transformer", tokenizer=tokenizer.spec,
        variants={name: VariantSpec(file=name, format=fmt, inputs=session.input_names, outputs=session.output_names)},
        default_variant=name, files=_files(path, graph, weights),
        embedding=EmbeddingSpec(dimension=dimension, similarity_fn_name=similarity if similarity in SIMILARITY else None,
                                prompts=dict(st_config.get("prompts") or {}),
                                default_prompt_name=st_config.get("default_prompt_name"),
                                pooling_mode=modes if len(modes) > 1 else modes[0], include_prompt=include_prompt,
                                normalized="Normalize" in types, modules=types),
        source={"model": str(path), "loaded_as": "sentence-transformers folder"},
    )
    return name, GraphRunner(tokenizer, session), manifest


class LogitsSession:
    """A sequence-classification graph (ST / optimum export) behind the cross-encoder contract: output 'logits'."""

    def __init__(self, inner: GraphSession) -> None:
        self._inner = inner
        self.input_names = list(inner.input_names)
        self.output_names = ["logits"]
        self.description = inner.description

    def run(self, feeds: dict[str, np.ndarray], outputs=None) -> dict[str, np.ndarray]:
        outputs = self._inner.run(feeds)
        logits = outputs.get("logits", next(iter(outputs.values())))
        return {"logits": np.asarray(logits, dtype=np.float32)}


_CE_ACTIVATIONS = {"Sigmoid": "sigmoid", "Identity": "identity", "Tanh": "tanh", "Softmax": "softmax", "ReLU": "relu"}


def open_st_cross_encoder_folder(path: Path, file_name: str | None = None, device: str | None = None,
                                 threads: int | None = None, backend: str = "torch", max_length: int | None = None
                                 ) -> tuple[str, GraphRunner, Manifest]:
    """(variant name, runner, in-memory manifest) for a Sentence Transformers cross-encoder folder with its own
    ONNX/OpenVINO sequence-classification graph (``backend="onnx"`` / optimum output)."""
    _check_kind(path, "cross-encoder")
    _, types = _modules(path)
    if types[1:]:
        raise BundleError(f"{path}: cross-encoder modules {types[1:]} cannot run without torch; export the model.")
    st_config, hf_config = _json(path / "config_sentence_transformers.json"), _json(path / "config.json")
    id2label = hf_config.get("id2label") or {}
    num_labels = int(hf_config.get("num_labels") or len(id2label) or 1)
    path_name = st_config.get("activation_fn")
    if path_name:
        short = str(path_name).rsplit(".", 1)[-1]
        if not str(path_name).startswith("torch.") or short not in _CE_ACTIVATIONS:
            raise BundleError(
                f"{path}: activation {path_name!r} has no torch-free equivalent (supported: "
                f"{sorted(_CE_ACTIVATIONS)}); pass activation_fn='identity' (or another name) when loading."
            )
        activation = _CE_ACTIVATIONS[short]
    else:
        activation = "sigmoid" if num_labels == 1 else "identity"
    tokenizer = _folder_tokenizer(path, max_length)
    graph, fmt, inner, weights = _open_graph(path, file_name, backend, device, threads)
    session = LogitsSession(inner)
    name = graph.relative_to(path).as_posix()
    labels = [str(id2label[k]) for k in sorted(id2label, key=lambda k: int(k))] if id2label else []
    manifest = Manifest(
        kind="cross-encoder", tokenizer=tokenizer.spec,
        variants={name: VariantSpec(file=name, format=fmt, inputs=session.input_names, outputs=["logits"])},
        default_variant=name, files=_files(path, graph, weights),
        cross_encoder=CrossEncoderSpec(num_labels=num_labels, activation=activation, labels=labels),
        source={"model": str(path), "loaded_as": "sentence-transformers cross-encoder folder",
                "prompts": dict(st_config.get("prompts") or {}),
                "default_prompt_name": st_config.get("default_prompt_name")},
    )
    return name, GraphRunner(tokenizer, session), manifest


def _ensure_lowercase(tokenizer: Any) -> None:
    """ST adds a Lowercase normalizer when do_lower_case is set; do the same on the raw tokenizer.json."""
    from tokenizers import normalizers

    current = tokenizer.normalizer
    if current is not None and "Lowercase" in repr(current):
        return
    tokenizer.normalizer = normalizers.Sequence([normalizers.Lowercase()] + ([current] if current else []))
