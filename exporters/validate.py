"""Re-check an existing bundle against the torch model it came from."""

from __future__ import annotations

from typing import Iterator, Sequence

from st_runtime.bundle import Bundle
from st_runtime.errors import ExportError, ParityError, RemoteCodeError

from .source import load_source


def revalidate(bundle: Bundle, model: str | None = None, variants: Sequence[str] = (),
               trust_remote_code: bool = False) -> Iterator[str]:
    """Yield one line per check; raise ParityError when a variant no longer meets its recorded bound.

    A source model with its own modeling code raises RemoteCodeError (nothing imported) unless
    ``trust_remote_code``; a source that cannot be loaded here only skips parity."""
    manifest = bundle.manifest
    missing = set(variants) - set(manifest.variants)
    if missing:
        raise ParityError(f"Variants {sorted(missing)} are not in this bundle; it has {sorted(manifest.variants)}.")
    target = model or manifest.source.get("path") or manifest.source.get("model")
    try:
        source = load_source(target, kind=manifest.kind, trust_remote_code=trust_remote_code)
    except RemoteCodeError:
        raise  # the user's decision, not a missing model: say so instead of skipping
    except ExportError as exc:
        yield f"parity: skipped (the source model {target!r} cannot be loaded here: {exc})"
        return
    atol = float(manifest.parity.get("atol", 1e-5))
    for name, spec in manifest.variants.items():
        if variants and name not in variants:
            continue
        if spec.precision == "fp32" and spec.settings.get("exact", True):
            if manifest.kind == "cross-encoder":
                from .cross_encoder import cross_encoder_parity

                report = cross_encoder_parity(source.model, bundle.root, None, atol, variant=name)
            elif manifest.kind == "sparse-encoder":
                from .sparse import sparse_parity

                report = sparse_parity(source.model, bundle.root, None, atol, variant=name)
            elif manifest.kind == "multi-vector-encoder":
                from .multi_vector import multi_vector_parity

                report = multi_vector_parity(source.model, bundle.root, None, atol, variant=name)
            elif manifest.embedding is not None and manifest.embedding.router is not None:
                from .router_embedding import router_embedding_parity

                report = router_embedding_parity(source.model, bundle.root, None, atol, variant=name)
            elif spec.format == "static-embedding":
                from .static import static_parity

                report = static_parity(source.model, bundle.root, None, atol, variant=name)
            else:
                from .export import embedding_parity

                report = embedding_parity(source.model, bundle.root, None, atol, variant=name)
            yield f"{name}: parity OK, max abs {report['max_abs']:.2e} <= {atol:g} over {report['texts']} texts"
            for route, figures in report.get("routes", {}).items():
                yield f"{name}: route {route!r} (task={figures['task']!r}) parity OK, max abs {figures['max_abs']:.2e}"
        elif manifest.kind == "multi-vector-encoder":
            from .multi_vector_gates import check_multi_vector_variant

            figures = check_multi_vector_variant(source.model, bundle.root, name, spec.accuracy.get("gate", {}))
        elif manifest.kind == "sparse-encoder":
            from .sparse_gates import check_sparse_variant

            figures = check_sparse_variant(source.model, bundle.root, name, spec.accuracy.get("gate", {}))
        else:
            from .gates import check_variant

            figures = check_variant(source.model, bundle.root, name, manifest.kind, spec.accuracy.get("gate", {}))
            shown = ", ".join(f"{k}={v:.4g}" for k, v in figures.items() if isinstance(v, float))
            yield f"{name}: gate OK ({shown})"
