"""Open a bundle directory: find its manifest, check every file before anything runs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from . import hash_cache
from .errors import BundleNotFoundError, IntegrityError, WrongModelKindError
from .manifest import CLASS_OF_KIND, MANIFEST_NAME, Manifest, VariantSpec


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Bundle:
    """A verified bundle on disk: its directory and its manifest.

    Opening checks every file's presence and size; sha256 is checked for all files with ``verify="all"``
    (``st-runtime validate``, always hashing), or, with ``verify=True``, for the files of the variant that gets
    loaded (``check_hashes``): a full bundle holds nine graphs, and hashing them all would cost more than loading
    one. Loads reuse the digest of a file unchanged since an earlier load (``hash_cache``).
    """

    root: Path
    manifest: Manifest
    verify: bool = True
    _hashed: set = field(default_factory=set)

    @classmethod
    def open(cls, path: str | Path, *, expected_kind: str | None = None, verify: bool | str = True) -> "Bundle":
        """Read the manifest, check kind and file sizes; ``verify="all"`` also checks every sha256 now."""
        root = Path(path).expanduser()
        if not root.exists():
            raise BundleNotFoundError(
                f"Bundle path {str(root)!r} does not exist. Create one with `st-runtime export MODEL {root}`."
            )
        if not root.is_dir() or not (root / MANIFEST_NAME).is_file():
            hint = ""
            if (root / "modules.json").is_file():
                hint = " It looks like a Sentence Transformers model folder: export it first with `st-runtime export`."
            raise BundleNotFoundError(f"{str(root)!r} is not an st-runtime bundle (no {MANIFEST_NAME}).{hint}")
        manifest = Manifest.read(root)
        if expected_kind and manifest.kind != expected_kind:
            other = CLASS_OF_KIND.get(manifest.kind, "SentenceTransformer")
            raise WrongModelKindError(
                f"{str(root)!r} holds a {manifest.kind} bundle; open it with st_runtime.{other} instead."
            )
        bundle = cls(root=root.resolve(), manifest=manifest, verify=bool(verify))
        bundle.check_files(full=verify == "all", fresh=True)
        return bundle

    def path_of(self, rel: str) -> Path:
        """Absolute path of a file named in the manifest (names are validated to stay inside)."""
        return self.root / rel

    def files_of(self, variant: str) -> list[str]:
        """Files a variant needs: its graph, the graph's weights (.bin, external data) and every shared file."""
        owned = {name: _own_files(spec) for name, spec in self.manifest.variants.items()}
        for route in self.manifest.graph_routes().values():  # a Router route's graph of each variant
            for name, spec in route.variants.items():
                owned.setdefault(name, set()).update(_own_files(spec))
        others = set().union(*(files for name, files in owned.items() if name != variant))
        return [rel for rel in self.manifest.files if rel in owned[variant] or rel not in others]

    def weight_files(self, variant: str) -> list[str]:
        """The variant's raw tensor file (OpenVINO's .bin, ONNX external data): bytes that no parser interprets."""
        weights = self.manifest.variants[variant].weights_file
        return [weights] if weights else []

    def check_hashes(self, files: list[str]) -> None:
        """With ``verify``, check the sha256 of ``files`` (each file once per Bundle)."""
        if self.verify:
            self.check_files(full=True, only=[rel for rel in files if rel not in self._hashed])

    def check_files(self, full: bool = True, only: list[str] | None = None, fresh: bool = False) -> None:
        """Raise IntegrityError if a file is missing, has the wrong size, or (``full``) the wrong sha256.

        A digest remembered from an earlier load of the unchanged file is reused (``hash_cache``) unless ``fresh``.
        """
        for rel, entry in self.manifest.files.items():
            if only is not None and rel not in only:
                continue
            path = self.path_of(rel)
            if not path.is_file():
                extra = " (ONNX external data must sit next to its graph)" if rel.endswith(".data") else ""
                raise IntegrityError(
                    f"Bundle file {rel!r} is missing from {str(self.root)!r}{extra}. Copy the whole bundle "
                    "directory, or re-export it."
                )
            size = path.stat().st_size
            if "size" in entry and size != entry["size"]:
                raise IntegrityError(
                    f"Bundle file {rel!r} has {size} bytes but the manifest records {entry['size']}: it is truncated "
                    "or was replaced. Re-copy or re-export the bundle."
                )
            if not full:
                continue
            digest = None if fresh else hash_cache.remembered(path)
            if digest is None:
                digest = sha256_file(path)
                if digest == entry.get("sha256"):
                    hash_cache.remember(path, digest)
            if digest != entry.get("sha256"):
                raise IntegrityError(
                    f"Bundle file {rel!r} fails its sha256 check: it is corrupt or was modified. Re-copy or "
                    "re-export the bundle (or pass verify=False to skip checks at your own risk)."
                )
            self._hashed.add(rel)

    def variant(self, name: str | None) -> tuple[str, VariantSpec]:
        """The named variant, or the default one."""
        from .errors import InputValidationError

        name = name or self.manifest.default_variant
        if name not in self.manifest.variants:
            raise InputValidationError(
                f"Unknown variant {name!r}; this bundle has {sorted(self.manifest.variants)}. "
                "Add variants with `st-runtime quantize BUNDLE --variants ...`."
            )
        return name, self.manifest.variants[name]


def _own_files(spec: VariantSpec) -> set[str]:
    """The files a variant alone reads: its graph and its weights file (a static-shape variant: every bucket's)."""
    buckets = spec.settings.get("static_shapes") or ()
    return {rel for rel in (spec.file, spec.weights_file, *(b.get(k) for b in buckets for k in ("file", "weights_file")))
            if rel}
