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
KINDS = ("sentence-transformer", "cross-encoder", "sparse-encoder", "multi-vector-encoder")
# The st_runtime class that opens each kind of bundle (named in WrongModelKindError messages).
CLASS_OF_KIND = {"sentence-transformer": "SentenceTransformer", "cross-encoder": "CrossEncoder",
                 "sparse-encoder": "SparseEncoder", "multi-vector-encoder": "MultiVectorEncoder"}
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
    router: "RouterSpec | None" = None  # a Router model: its routes and how a task picks one


@dataclass
class CrossEncoderSpec:
    """Cross-encoder settings: labels and the activation ST applies in predict."""

    num_labels: int = 1
    activation: str = "sigmoid"
    labels: list[str] = field(default_factory=list)
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None


@dataclass
class RouteSpec:
    """One route of a Router module: a graph or a numpy-only module with its own files.

    A "graph" route without ``variants`` runs the bundle's own graph (the variant the model opened); one with
    ``variants`` has its own graphs (``routes/<name>/model.onnx``, ...), one per variant name of the bundle, and its
    own tokenizer (``tokenizer_file`` / ``tokenizer``).
    """

    type: str  # "graph" | "sparse-static" (SparseStaticEmbedding: token presence x per-token weight)
    weights_file: str | None = None  # .npy of the numpy-only module
    tokenizer_file: str | None = None
    tokenizer: TokenizerSpec | None = None
    add_special_tokens: bool = True
    modules: list[str] = field(default_factory=list)
    variants: dict[str, VariantSpec] = field(default_factory=dict)

    def files(self) -> list[str]:
        """Every bundle file this route reads."""
        own = [rel for rel in (self.weights_file, self.tokenizer_file) if rel]
        for spec in self.variants.values():
            own += [rel for rel in (spec.file, spec.weights_file) if rel]
        return own


@dataclass
class RouterSpec:
    """How sentence-transformers' Router picks a route from ``task`` (text modality only)."""

    routes: dict[str, RouteSpec]
    default_route: str | None = None
    route_mappings: list[list[Any]] = field(default_factory=list)  # [task | None, modality | None, route]


@dataclass
class SparseSpec:
    """SparseEncoder settings: the graph gives one vocabulary- (or latent-) sized activation per text."""

    dimension: int
    pooling_strategy: str | None = "max"  # SpladePooling's; None for CSR models
    activation: str | None = "relu"
    similarity_fn_name: str = "dot"
    max_active_dims: int | None = None
    topk_relu: int | None = None  # CSR: the graph gives SparseAutoEncoder latents before its top-k + ReLU
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None
    modules: list[str] = field(default_factory=list)
    router: RouterSpec | None = None


SPARSE_SIMILARITY_FNS = ("dot", "cosine", "euclidean", "manhattan")
MULTI_VECTOR_SIMILARITY_FNS = ("maxsim", "meanmaxsim")


@dataclass
class MultiVectorSpec:
    """MultiVectorEncoder settings: the graph gives per-token embeddings and the scoring mask."""

    dimension: int
    similarity_fn_name: str = "maxsim"
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None
    skiplist_ids: list[int] = field(default_factory=list)
    skiplist_tasks: list[str] = field(default_factory=lambda: ["document"])
    keep_only_token_ids: list[int] | None = None
    query_length: int | None = None
    document_length: int | None = None
    normalized: bool = False
    modules: list[str] = field(default_factory=list)


def _router_from_dict(router: dict | None) -> RouterSpec | None:
    if not router:
        return None
    routes = {}
    for name, route in router["routes"].items():
        route = dict(route)
        if route.get("tokenizer"):
            route["tokenizer"] = TokenizerSpec(**route["tokenizer"])
        route["variants"] = {k: VariantSpec(**v) for k, v in (route.get("variants") or {}).items()}
        routes[name] = RouteSpec(**route)
    return RouterSpec(routes=routes, default_route=router.get("default_route"),
                      route_mappings=[list(m) for m in router.get("route_mappings", [])])


def _sparse_from_dict(data: dict) -> SparseSpec:
    data = dict(data)
    return SparseSpec(router=_router_from_dict(data.pop("router", None)), **data)


def _embedding_from_dict(data: dict) -> EmbeddingSpec:
    data = dict(data)
    return EmbeddingSpec(router=_router_from_dict(data.pop("router", None)), **data)


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
    sparse: SparseSpec | None = None
    multi_vector: MultiVectorSpec | None = None
    source: dict[str, Any] = field(default_factory=dict)
    architecture: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    parity: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    format: str = FORMAT_NAME
    format_version: int = FORMAT_VERSION

    @property
    def router(self) -> RouterSpec | None:
        """The Router section of a sparse or dense bundle (None for a single-path model)."""
        section = self.sparse or self.embedding
        return getattr(section, "router", None)

    def graph_routes(self) -> dict[str, RouteSpec]:
        """Routes with graphs of their own (besides the bundle's main graph)."""
        router = self.router
        return {name: r for name, r in router.routes.items() if r.variants} if router else {}

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form, without empty optional sections."""
        data = asdict(self)
        if data.get("embedding") and data["embedding"].get("router") is None:
            data["embedding"].pop("router")
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
            embedding = _embedding_from_dict(data["embedding"]) if data.get("embedding") else None
            cross = CrossEncoderSpec(**data["cross_encoder"]) if data.get("cross_encoder") else None
            sparse = _sparse_from_dict(data["sparse"]) if data.get("sparse") else None
            multi = MultiVectorSpec(**data["multi_vector"]) if data.get("multi_vector") else None
            manifest = cls(
                kind=kind,
                tokenizer=tokenizer,
                variants=variants,
                default_variant=data["default_variant"],
                files=dict(data["files"]),
                embedding=embedding,
                cross_encoder=cross,
                sparse=sparse,
                multi_vector=multi,
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
        if self.kind == "sparse-encoder" and self.sparse is None:
            raise ManifestError(f"{where}: a sparse-encoder bundle needs a 'sparse' section.")
        if self.kind == "multi-vector-encoder" and self.multi_vector is None:
            raise ManifestError(f"{where}: a multi-vector-encoder bundle needs a 'multi_vector' section.")
        if self.sparse and self.sparse.similarity_fn_name not in SPARSE_SIMILARITY_FNS:
            raise ManifestError(f"{where}: unknown sparse similarity_fn_name {self.sparse.similarity_fn_name!r}.")
        if self.multi_vector and self.multi_vector.similarity_fn_name not in MULTI_VECTOR_SIMILARITY_FNS:
            raise ManifestError(f"{where}: unknown multi-vector similarity_fn_name "
                                f"{self.multi_vector.similarity_fn_name!r}.")
        if self.default_variant not in self.variants:
            raise ManifestError(f"{where}: default_variant {self.default_variant!r} is not among {sorted(self.variants)}.")
        paths = [self.tokenizer.file, *self.files]
        for variant in self.variants.values():
            paths.append(variant.file)
            if variant.weights_file:
                paths.append(variant.weights_file)
        router = self.router
        if router is not None:
            for name, route in router.routes.items():
                paths += route.files()
                missing = sorted(set(self.variants) - set(route.variants)) if route.variants else []
                if missing:
                    raise ManifestError(f"{where}: route {name!r} has no graph for variants {missing}; every "
                                        "variant of a multi-graph Router bundle needs one per route. Re-export it.")
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
