"""The bundle manifest: one validated JSON document that holds every setting the runtime obeys."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import ManifestError

MANIFEST_NAME = "st_runtime.json"
FORMAT_NAME = "st-runtime-bundle"
FORMAT_VERSION = 1
KINDS = ("sentence-transformer", "cross-encoder")
SIMILARITY_FNS = ("cosine", "dot", "euclidean", "manhattan")
ACTIVATIONS = ("sigmoid", "identity", "softmax", "tanh", "relu")


@dataclass
class TokenizerSpec:
    """How texts become graph inputs (mirrors the Hugging Face tokenizer the model was saved with)."""

    file: str = "tokenizer.json"
    max_seq_length: int | None = None
    do_lower_case: bool = False
    padding_side: str = "right"
    truncation_side: str = "right"
    pad_token: str = "[PAD]"
    pad_token_id: int = 0
    special_token_ids: list[int] = field(default_factory=list)
    model_max_length: int | None = None


@dataclass
class VariantSpec:
    """One runnable graph in the bundle (fp32 ONNX, an int8 ONNX, an OpenVINO IR, ...)."""

    file: str
    format: str = "onnx"  # "onnx" or "openvino"
    precision: str = "fp32"
    target: str = "cpu"
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    weights_file: str | None = None  # OpenVINO .bin or ONNX external data
    accuracy: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class EmbeddingSpec:
    """Bi-encoder settings: what SentenceTransformer.encode needs besides the graph."""

    dimension: int
    similarity_fn_name: str | None = None
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None
    truncate_dim: int | None = None
    pooling_mode: str | list[str] = "mean"
    include_prompt: bool = True
    normalized: bool = False
    modules: list[str] = field(default_factory=list)


@dataclass
class CrossEncoderSpec:
    """Cross-encoder settings: labels and the activation ST applies in predict."""

    num_labels: int = 1
    activation: str = "sigmoid"
    labels: list[str] = field(default_factory=list)
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None


@dataclass
class Manifest:
    """Everything about a bundle; read once at load, written once at export."""

    kind: str
    tokenizer: TokenizerSpec
    variants: dict[str, VariantSpec]
    default_variant: str
    files: dict[str, dict[str, Any]]
    embedding: EmbeddingSpec | None = None
    cross_encoder: CrossEncoderSpec | None = None
    source: dict[str, Any] = field(default_factory=dict)
    architecture: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    parity: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    format: str = FORMAT_NAME
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form, without empty optional sections."""
        data = asdict(self)
        return {k: v for k, v in data.items() if v is not None}

    def write(self, directory: Path) -> Path:
        path = Path(directory) / MANIFEST_NAME
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n", encoding="utf-8")
        return path

    @classmethod
    def read(cls, directory: Path) -> "Manifest":
        """Read and validate the manifest in a bundle directory."""
        path = Path(directory) / MANIFEST_NAME
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{path} is not valid JSON ({exc}). Re-export the bundle with `st-runtime export`.") from exc
        return cls.from_dict(data, where=str(path))

    @classmethod
    def from_dict(cls, data: Any, where: str = "manifest") -> "Manifest":
        if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
            raise ManifestError(f"{where} is not an st-runtime bundle manifest (missing format={FORMAT_NAME!r}).")
        version = data.get("format_version")
        if not isinstance(version, int) or version < 1:
            raise ManifestError(f"{where} has an invalid format_version {version!r}.")
        if version > FORMAT_VERSION:
            raise ManifestError(
                f"{where} uses bundle format version {version}, but this st-runtime reads up to version "
                f"{FORMAT_VERSION}. Upgrade st-runtime (pip install -U st-runtime) or re-export with this version."
            )
        try:
            kind = data["kind"]
            if kind not in KINDS:
                raise ManifestError(f"{where}: kind {kind!r} is not one of {KINDS}.")
            tokenizer = TokenizerSpec(**data["tokenizer"])
            variants = {name: VariantSpec(**spec) for name, spec in data["variants"].items()}
            embedding = EmbeddingSpec(**data["embedding"]) if data.get("embedding") else None
            cross = CrossEncoderSpec(**data["cross_encoder"]) if data.get("cross_encoder") else None
            manifest = cls(
                kind=kind,
                tokenizer=tokenizer,
                variants=variants,
                default_variant=data["default_variant"],
                files=dict(data["files"]),
                embedding=embedding,
                cross_encoder=cross,
                source=dict(data.get("source", {})),
                architecture=dict(data.get("architecture", {})),
                versions=dict(data.get("versions", {})),
                parity=dict(data.get("parity", {})),
                created=str(data.get("created", "")),
                format_version=version,
            )
        except ManifestError:
            raise
        except (KeyError, TypeError, AttributeError) as exc:
            raise ManifestError(f"{where} is missing or has a malformed field ({exc!r}). Re-export the bundle.") from exc
        manifest.validate(where)
        return manifest

    def validate(self, where: str = "manifest") -> None:
        """Check internal consistency and that every path stays inside the bundle."""
        if self.kind == "sentence-transformer" and self.embedding is None:
            raise ManifestError(f"{where}: a sentence-transformer bundle needs an 'embedding' section.")
        if self.kind == "cross-encoder" and self.cross_encoder is None:
            raise ManifestError(f"{where}: a cross-encoder bundle needs a 'cross_encoder' section.")
        if self.default_variant not in self.variants:
            raise ManifestError(f"{where}: default_variant {self.default_variant!r} is not among {sorted(self.variants)}.")
        paths = [self.tokenizer.file, *self.files]
        for variant in self.variants.values():
            paths.append(variant.file)
            if variant.weights_file:
                paths.append(variant.weights_file)
        for rel in paths:
            check_relative_path(rel, where)
        for rel in paths:
            if rel not in self.files:
                raise ManifestError(f"{where}: file {rel!r} is used but has no checksum entry under 'files'.")
        if self.embedding and self.embedding.similarity_fn_name not in (None, *SIMILARITY_FNS):
            raise ManifestError(f"{where}: unknown similarity_fn_name {self.embedding.similarity_fn_name!r}.")
        if self.cross_encoder and self.cross_encoder.activation not in ACTIVATIONS:
            raise ManifestError(f"{where}: unknown cross-encoder activation {self.cross_encoder.activation!r}.")


def check_relative_path(rel: str, where: str = "manifest") -> None:
    """Refuse absolute paths and '..' so a manifest can never point outside its bundle."""
    pure = PurePosixPath(rel)
    if not rel or pure.is_absolute() or ".." in pure.parts or "\\" in rel or ":" in rel:
        raise ManifestError(
            f"{where}: file path {rel!r} points outside the bundle. Bundle paths must be plain relative names; "
            "this bundle may have been tampered with. Re-export it."
        )
