"""Where st-runtime and sentence-transformers differ on purpose: the arguments it refuses, and why.

Every parameter of sentence-transformers' public API (``SentenceTransformer.__init__`` / ``encode`` /
``encode_query`` / ``encode_document`` / ``similarity*``, ``CrossEncoder.__init__`` / ``predict`` / ``rank`` and the
``util`` functions) is accepted here under the same name and kind, or listed in ``REFUSED``: passing it with a value
other than sentence-transformers' default raises ``UnsupportedArgumentError`` with the reason below. The README's
"Refused arguments" table is this list; ``tests/conformance/`` checks both against the installed
sentence-transformers.
"""

from __future__ import annotations

from typing import Any

from .errors import InputValidationError, UnsupportedArgumentError

_NO_HUB = "st-runtime opens local folders only and never touches the network; download the model first"
_NO_TORCH = "st-runtime runs exported graphs without torch"

REFUSED: dict[str, str] = {
    # SentenceTransformer.__init__ / CrossEncoder.__init__
    "__init__.modules": f"{_NO_TORCH}: build the model with sentence-transformers, save it, export it",
    "__init__.cache_folder": _NO_HUB,
    "__init__.revision": _NO_HUB,
    "__init__.token": _NO_HUB,
    "__init__.use_auth_token": _NO_HUB,
    "__init__.trust_remote_code": "a bundle never runs code from a folder; export the model where you trust it "
                                  "(st-runtime export runs it once, under torch)",
    "__init__.model_kwargs": f"{_NO_TORCH}: transformers' loading options do not apply (use variant= for precision)",
    "__init__.processor_kwargs": "the tokenizer is fixed at export (tokenizer.json); use max_seq_length / max_length",
    "__init__.config_kwargs": "the model config is fixed at export; re-export after changing it",
    "__init__.model_card_data": "st-runtime does not write model cards",
    "__init__.keep_in_fp32_modules": f"{_NO_TORCH}: pick an fp32 variant instead (variant='onnx')",
    "__init__.num_labels": "the number of labels is fixed by the exported classifier head; only the exported value "
                           "is accepted",
    # encode / predict
    "convert_to_tensor": f"{_NO_TORCH}: results are numpy arrays; wrap them with torch.from_numpy(...) yourself",
    "processing_kwargs": "the tokenizer is fixed at export; use max_seq_length (or max_length) instead",
}

_DEFAULTS = {"trust_remote_code": False}


def refuse(name: str, key: str | None = None) -> None:
    """Raise the typed error for a refused argument ``name`` (``key``: its entry in ``REFUSED``)."""
    reason = REFUSED[key or name]
    raise UnsupportedArgumentError(f"{name} is not supported by st-runtime: {reason}.")


def check_init_arguments(cls: str, model_name_or_path: Any, file_name: str | None = None, **st_only: Any) -> str | None:
    """Refuse ST loading arguments that need torch or the Hub when given a non-default value; return file_name."""
    if file_name is not None and not isinstance(file_name, str):
        raise InputValidationError(f"file_name must be a graph file name such as 'onnx/model.onnx', got {file_name!r}.")
    if model_name_or_path is not None and not isinstance(model_name_or_path, (str, bytes)) and \
            not hasattr(model_name_or_path, "__fspath__"):
        raise InputValidationError(f"model_name_or_path must be a folder path, got {type(model_name_or_path).__name__}.")
    if model_name_or_path is None:
        raise InputValidationError(
            f"{cls}() needs model_name_or_path: a bundle folder (st-runtime export) or a Sentence Transformers "
            f"folder with its own ONNX/OpenVINO graph. {REFUSED['__init__.modules'][0].upper()}"
            f"{REFUSED['__init__.modules'][1:]}."
        )
    for name, value in st_only.items():
        if value not in (None, _DEFAULTS.get(name)) and not (name == "model_kwargs" and _only_file_name(value)):
            refuse(name, f"__init__.{name}")
    model_kwargs = st_only.get("model_kwargs")
    if model_kwargs and _only_file_name(model_kwargs):  # ST's way to pick an ONNX/OpenVINO file
        return file_name or model_kwargs["file_name"]
    return file_name


def _only_file_name(kwargs: Any) -> bool:
    return isinstance(kwargs, dict) and set(kwargs) == {"file_name"} and isinstance(kwargs["file_name"], str)


def refuse_tensor(convert_to_tensor: Any) -> None:
    if convert_to_tensor:
        refuse("convert_to_tensor")


def check_extra_kwargs(method: str, kwargs: dict[str, Any]) -> str | None:
    """The ``**kwargs`` sentence-transformers forwards to the model: ``task`` is accepted (query / document, or a
    Router model's route name; a model without a Router ignores it, as sentence-transformers does),
    ``processing_kwargs`` refused with its reason, anything else refused as unknown. Returns the task."""
    task = kwargs.pop("task", None)
    if task is not None and not isinstance(task, str):
        raise InputValidationError(f"task must be a string such as 'query' or 'document', or None, got {task!r}.")
    if kwargs.pop("processing_kwargs", None):
        refuse("processing_kwargs")
    if kwargs:
        raise UnsupportedArgumentError(
            f"{method}() got arguments this runtime does not use: {sorted(kwargs)}. See the README's API table "
            "(sentence-transformers raises ValueError for these too)."
        )
    return task


def variant_for_backend(bundle: Any, variant: str | None, backend: str) -> str | None:
    """sentence-transformers' ``backend='onnx'|'openvino'`` picks the bundle's graph of that format."""
    if not isinstance(backend, str) or backend not in ("torch", "onnx", "openvino"):
        raise InputValidationError(f"backend must be 'torch', 'onnx' or 'openvino', got {backend!r}.")
    if variant is not None and not isinstance(variant, str):
        raise InputValidationError(f"variant must be a variant name, 'auto' or None, got {variant!r}.")
    if backend == "torch" or variant is not None:
        return variant
    if backend == bundle.manifest.variants[bundle.manifest.default_variant].format:
        return None
    names = [name for name, spec in bundle.manifest.variants.items()
             if spec.format == backend and spec.precision == "fp32"]
    if not names:
        raise InputValidationError(
            f"backend={backend!r}: this bundle has no fp32 {backend} graph (variants: {sorted(bundle.manifest.variants)})."
            f" Add one with `st-runtime quantize BUNDLE --variants {backend}`, or pass variant=NAME."
        )
    return names[0]
