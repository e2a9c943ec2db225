"""st-runtime: run exported Sentence Transformers models without torch.

``import st_runtime`` never imports torch, transformers or sentence_transformers; onnxruntime and
openvino are imported only when a graph is opened.
"""

from __future__ import annotations

from . import util
from .errors import (
    BackendUnavailableError,
    BundleError,
    BundleNotFoundError,
    ExportError,
    InputTypeError,
    InputValidationError,
    IntegrityError,
    ManifestError,
    ParityError,
    StRuntimeError,
    RemoteCodeError,
    UnsupportedModelError,
    WrongModelKindError,
)
from .quantization import quantize_embeddings
from .sentence_transformer import SentenceTransformer

__version__ = "0.1.0"


def __getattr__(name: str):
    # CrossEncoder lives in its own module; import it on first use.
    if name == "CrossEncoder":
        from .cross_encoder import CrossEncoder

        return CrossEncoder
    raise AttributeError(f"module 'st_runtime' has no attribute {name!r}")


__all__ = [
    "SentenceTransformer",
    "CrossEncoder",
    "util",
    "quantize_embeddings",
    "StRuntimeError",
    "BundleError",
    "BundleNotFoundError",
    "ManifestError",
    "IntegrityError",
    "WrongModelKindError",
    "BackendUnavailableError",
    "InputValidationError",
    "InputTypeError",
    "ExportError",
    "UnsupportedModelError",
    "RemoteCodeError",
    "ParityError",
    "__version__",
]
