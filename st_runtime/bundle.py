"""Open a bundle directory: find its manifest, check every file before anything runs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from .errors import BundleNotFoundError, IntegrityError, WrongModelKindError
from .manifest import MANIFEST_NAME, Manifest, VariantSpec


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Bundle:
    """A verified bundle on disk: its directory and its manifest."""

    root: Path
    manifest: Manifest

    @classmethod
    def open(cls, path: str | Path, *, expected_kind: str | None = None, verify: bool = True) -> "Bundle":
        """Read the manifest, check kind, and (with ``verify``) check size and sha256 of every file."""
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
            other = "CrossEncoder" if manifest.kind == "cross-encoder" else "SentenceTransformer"
            raise WrongModelKindError(
                f"{str(root)!r} holds a {manifest.kind} bundle; open it with st_runtime.{other} instead."
            )
        bundle = cls(root=root.resolve(), manifest=manifest)
        bundle.check_files(full=verify)
        return bundle

    def path_of(self, rel: str) -> Path:
        """Absolute path of a file named in the manifest (names are validated to stay inside)."""
        return self.root / rel

    def check_files(self, full: bool = True) -> None:
        """Raise IntegrityError if a file is missing, has the wrong size, or (``full``) the wrong sha256."""
        for rel, entry in self.manifest.files.items():
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
            if full and sha256_file(path) != entry.get("sha256"):
                raise IntegrityError(
                    f"Bundle file {rel!r} fails its sha256 check: it is corrupt or was modified. Re-copy or "
                    "re-export the bundle (or pass verify=False to skip checks at your own risk)."
                )

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
