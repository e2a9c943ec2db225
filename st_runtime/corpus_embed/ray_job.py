"""The corpus-embedding job on Ray Data: one model per actor, map_batches, Parquet out (ray extra)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BackendNotInstalledError
from .sinks import chunk_table, join_parts
from .sources import read_chunks


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise BackendNotInstalledError("Ray jobs need the ray extra: pip install 'st-runtime[ray]'") from exc
    return ray


def pack_bundle(bundle_dir: Path) -> dict[str, bytes]:
    """Every file of a bundle as bytes, to ship through Ray's object store to workers without shared storage."""
    return {p.relative_to(bundle_dir).as_posix(): p.read_bytes() for p in bundle_dir.rglob("*") if p.is_file()}


class BundleEmbedder:
    """Ray actor: loads the model once, then embeds each batch of rows ('id', text column)."""

    def __init__(self, bundle: str | dict, variant: str | None, column: str, encode_kwargs: dict,
                 threads: int) -> None:
        from ..sentence_transformer import SentenceTransformer

        if isinstance(bundle, dict):  # shipped bytes: unpack into a private folder on this worker
            folder = Path(tempfile.mkdtemp(prefix="st-runtime-bundle-"))
            for rel, data in bundle.items():
                (folder / rel).parent.mkdir(parents=True, exist_ok=True)
                (folder / rel).write_bytes(data)
            bundle = str(folder)
        self.model = SentenceTransformer(bundle, variant=variant, threads=threads)
        self.column, self.kwargs = column, encode_kwargs

    def __call__(self, batch: Any) -> Any:
        texts = [str(t) for t in batch.column(self.column).to_pylist()]
        ids = batch.column("id").to_numpy()
        embeddings = self.model.encode(texts, **self.kwargs)
        table = chunk_table(0, texts, embeddings)
        import pyarrow as pa

        return table.set_column(0, "id", pa.array(np.asarray(ids, dtype=np.int64)))


def embed_dataset(dataset: Any, bundle: str | Path, *, column: str = "text", variant: str | None = None,
                  workers: int = 1, rows_per_batch: int = 1024, cpus_per_worker: float | None = None,
                  ship_bundle: bool = False, **encode_kwargs: Any) -> Any:
    """Add embeddings to a Ray Dataset that has an int 'id' column and a text column; returns the lazy Dataset."""
    ray = _ray()
    if cpus_per_worker is None:
        # Leave a share of the cluster for the read tasks that feed the actors, or a small cluster deadlocks.
        total = float(ray.cluster_resources().get("CPU", 1))
        cpus_per_worker = min(1.0, total / (workers + 1))
    shipped: Any = pack_bundle(Path(bundle)) if ship_bundle else str(Path(bundle).resolve())
    return dataset.map_batches(
        BundleEmbedder, fn_constructor_args=(shipped, variant, column, encode_kwargs, max(1, int(cpus_per_worker))),
        batch_size=rows_per_batch, batch_format="pyarrow", num_cpus=cpus_per_worker,
        compute=ray.data.ActorPoolStrategy(size=workers),
    )


def read_dataset(path: Path, column: str, chunk_size: int = 4096) -> Any:
    """A Ray Dataset with columns 'id' (row number in file order) and ``column``.

    The driver streams the file in chunks into Ray's object store (one block per chunk), so ids are exact file
    row numbers; Ray's own readers cannot number rows without an extra zip pass that can deadlock small clusters.
    """
    ray = _ray()
    import pyarrow as pa

    tables, start = [], 0
    for texts in read_chunks(path, chunk_size, column):
        ids = np.arange(start, start + len(texts), dtype=np.int64)
        tables.append(pa.table({"id": ids, column: pa.array(texts, type=pa.string())}))
        start += len(texts)
    return ray.data.from_arrow(tables)


def _with_fixed_ranges(bundle: str | Path, variant: str | None, input_path: Path, column: str,
                       encode_kwargs: dict[str, Any]) -> dict[str, Any]:
    """For int8/uint8: one configuration with ranges fixed on the driver (as the local job does), so every Ray
    batch uses one scale; the actors receive that configuration whole."""
    kwargs = dict(encode_kwargs)
    calibration_embeddings = kwargs.pop("calibration_embeddings", None)
    calibration_size = kwargs.pop("calibration_size", None)
    if kwargs.get("precision", "float32") not in ("int8", "uint8") or "config" in kwargs:
        return kwargs
    from ..sentence_transformer import SentenceTransformer
    from .local import CALIBRATION_SIZE, calibration_ranges

    model = SentenceTransformer(bundle, variant=variant)
    config = model.call_config(truncate_dim=kwargs.pop("truncate_dim", None),
                               normalize_embeddings=bool(kwargs.pop("normalize_embeddings", False)),
                               precision=kwargs.pop("precision"), long_text=kwargs.pop("long_text", None),
                               chunk_stride=kwargs.pop("chunk_stride", None),
                               chunk_pooling=kwargs.pop("chunk_pooling", None))
    ranges = calibration_ranges(model, config, input_path, column, kwargs.get("prompt_name"),
                                kwargs.get("batch_size", 32), calibration_size or CALIBRATION_SIZE,
                                calibration_embeddings)
    kwargs["config"] = config.replace(ranges=ranges)
    return kwargs


def embed_file_ray(bundle: str | Path, input_path: str | Path, output: str | Path, *, address: str | None = None,
                   workers: int = 1, rows_per_batch: int = 1024, column: str = "text", variant: str | None = None,
                   ship_bundle: bool = False, **encode_kwargs: Any) -> Path:
    """Embed a file on a Ray cluster (``address=None`` starts a local one) and write Parquet.

    ``output`` ending in .parquet gives one file sorted by id (identical to the local job); any other path
    is a folder of Parquet parts as Ray writes them.
    """
    ray = _ray()
    encode_kwargs = _with_fixed_ranges(bundle, variant, Path(input_path), column, encode_kwargs)
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
    try:
        ds = embed_dataset(read_dataset(Path(input_path), column, chunk_size=rows_per_batch), bundle, column=column, variant=variant,
                           workers=workers, rows_per_batch=rows_per_batch, ship_bundle=ship_bundle, **encode_kwargs)
        output = Path(output)
        if output.suffix != ".parquet":
            ds.write_parquet(str(output))
            return output
        with tempfile.TemporaryDirectory(dir=output.parent) as tmp:
            ds.write_parquet(tmp)
            import pyarrow.parquet as pq

            table = pq.read_table(tmp).sort_by("id")
            sorted_part = Path(tmp) / "sorted.parquet.part"
            pq.write_table(table, str(sorted_part))
            join_parts([sorted_part], output)
        return output
    finally:
        if started_here:
            ray.shutdown()
