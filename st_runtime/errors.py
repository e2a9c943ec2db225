"""Typed errors raised where a fault is found; each message names the problem and the fix."""

from __future__ import annotations


class StRuntimeError(Exception):
    """Base class of every error st-runtime raises on purpose."""


class BundleError(StRuntimeError):
    """A bundle directory is missing, malformed, or fails its integrity checks."""


class BundleNotFoundError(BundleError, FileNotFoundError):
    """The path given as a bundle does not exist or holds no manifest."""


class ManifestError(BundleError, ValueError):
    """The manifest is unreadable, of an unknown format version, or inconsistent."""


class IntegrityError(BundleError):
    """A bundle file is missing, truncated, or does not match its recorded sha256."""


class WrongModelKindError(BundleError, TypeError):
    """A cross-encoder bundle was opened as a bi-encoder, or the other way round."""


class BackendUnavailableError(StRuntimeError):
    """The requested backend, device or execution provider cannot run here (base of the two cases below)."""


class BackendNotInstalledError(BackendUnavailableError, ImportError):
    """The runtime library a graph needs (onnxruntime, openvino, onnxruntime-gpu) is not installed."""


class UnsupportedDeviceError(BackendUnavailableError, ValueError):
    """The device string is unknown, or the installed runtime cannot use that device."""


class InputValidationError(StRuntimeError, ValueError):
    """The caller passed arguments or texts the model cannot take."""


class UnsupportedArgumentError(InputValidationError):
    """A sentence-transformers argument st-runtime refuses on purpose (see ``st_runtime.compat.REFUSED``)."""


class NotProvidedError(StRuntimeError, AttributeError):
    """A sentence-transformers name st-runtime does not provide, on purpose (see ``st_runtime.util.NOT_PROVIDED``)."""


class InputTypeError(StRuntimeError, TypeError):
    """An input in a batch has the wrong type (for example None, bytes or a number)."""


class ExportError(StRuntimeError):
    """An export step failed; nothing was written to the destination."""


class UnsupportedModelError(ExportError):
    """The source model has a module or architecture the exporter cannot turn into a graph."""


class RemoteCodeError(UnsupportedModelError):
    """The model runs its own Python code (auto_map, custom modules) and trust_remote_code was not given."""


class InsufficientMemoryError(ExportError):
    """The export would need more memory than this machine (or its container) has; raised before loading."""


class ParityError(ExportError):
    """An exported graph does not match the torch reference within its bound."""
