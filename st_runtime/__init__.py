"""st-runtime: run exported Sentence Transformers models without torch.

``import st_runtime`` never imports torch, transformers or sentence_transformers; onnxruntime and
openvino are imported only when a graph is opened.
"""

from __future__ import annotations

from . import util
from .config import EncodeConfig, RerankConfig
from .errors import (
    BackendNotInstalledError,
    BackendUnavailableError,
    BundleError,
    BundleNotFoundError,
    ExportError,
    InputTypeError,
    InputValidationError,
    IntegrityError,
    ManifestError,
    NotProvidedError,
    InsufficientMemoryError,
    ParityError,
    StRuntimeError,
    RemoteCodeError,
    UnsupportedArgumentError,
    UnsupportedDeviceError,
    UnsupportedModelError,
    WrongModelKindError,
)
from .quantization import quantize_embeddings
from .sentence_transformer import SentenceTransformer

__version__ = "0.1.0"


_LAZY = {"CrossEncoder": "cross_encoder", "SparseEncoder": "sparse_encoder",
         "MultiVectorEncoder": "multi_vector_encoder"}


def __getattr__(name: str):
    # The other model classes live in their own modules; import them on first use.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'st_runtime' has no attribute {name!r}")


__all__ = [
    "SentenceTransformer",
    "CrossEncoder",
    "SparseEncoder",
    "MultiVectorEncoder",
    "util",
    "quantize_embeddings",
    "StRuntimeError",
    "BundleError",
    "BundleNotFoundError",
    "ManifestError",
    "IntegrityError",
    "WrongModelKindError",
    "BackendUnavailableError",
    "BackendNotInstalledError",
    "UnsupportedDeviceError",
    "UnsupportedArgumentError",
    "NotProvidedError",
    "EncodeConfig",
    "RerankConfig",
    "InputValidationError",
    "InputTypeError",
    "ExportError",
    "UnsupportedModelError",
    "RemoteCodeError",
    "InsufficientMemoryError",
    "ParityError",
    "__version__",
]
