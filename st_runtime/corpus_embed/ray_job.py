"""The corpus-embedding job on Ray Data: one model per actor, map_batches, Parquet out (ray extra)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BackendNotInstalledError
from . import families
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
    """Ray actor: loads the model once, then embeds each batch of rows ('id', text column).

    A dense bundle runs ``encode(texts, **encode_kwargs)``; a sparse or multi-vector bundle gets
    ``encode_kwargs = {"family": (config, prompt_name, batch_size)}`` (its one configuration, built on the driver) and
    writes its own columns (``families.encode_chunk_table``)."""

    def __init__(self, bundle: str | dict, variant: str | None, column: str, encode_kwargs: dict,
                 threads: int) -> None:
        from ..model_kinds import open_model

        if isinstance(bundle, dict):  # shipped bytes: unpack into a private folder on this worker
            folder = Path(tempfile.mkdtemp(prefix="st-runtime-bundle-"))
            for rel, data in bundle.items():
                (folder / rel).parent.mkdir(parents=True, exist_ok=True)
                (folder / rel).write_bytes(data)
            bundle = str(folder)
        self.model = open_model(bundle, variant=variant, threads=threads)
        self.column, self.kwargs = column, dict(encode_kwargs)
        task = self.kwargs.get("task")
        if "family" not in self.kwargs and task is not None:  # a dense Router route: and the task's prompt
            self.kwargs["prompt_name"] = families.task_prompt(task, self.kwargs.get("prompt_name"), self.model.prompts)

    def __call__(self, batch: Any) -> Any:
        texts = [str(t) for t in batch.column(self.column).to_pylist()]
        ids = batch.column("id").to_numpy()
        if "family" in self.kwargs:
            config, prompt_name, batch_size = self.kwargs["family"]
            table = families.encode_chunk_table(self.model, 0, texts, config, prompt_name, batch_size)
        else:
            table = chunk_table(0, texts, self.model.encode(texts, **self.kwargs))
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
    if kwargs.get("task") is None:
        kwargs.pop("task", None)
    if kwargs.get("precision", "float32") not in ("int8", "uint8") or "config" in kwargs:
        return kwargs
    from ..sentence_transformer import SentenceTransformer
    from .local import CALIBRATION_SIZE, calibration_ranges

    model = SentenceTransformer(bundle, variant=variant)
    config = model.call_config(truncate_dim=kwargs.pop("truncate_dim", None),
                               normalize_embeddings=bool(kwargs.pop("normalize_embeddings", False)),
                               precision=kwargs.pop("precision"), long_text=kwargs.pop("long_text", None),
                               chunk_stride=kwargs.pop("chunk_stride", None),
                               chunk_pooling=kwargs.pop("chunk_pooling", None), task=kwargs.pop("task", None))
    kwargs["prompt_name"] = families.task_prompt(config.task, kwargs.get("prompt_name"), model.prompts)
    ranges = calibration_ranges(model, config, input_path, column, kwargs.get("prompt_name"),
                                kwargs.get("batch_size", 32), calibration_size or CALIBRATION_SIZE,
                                calibration_embeddings)
    kwargs["config"] = config.replace(ranges=ranges)
    return kwargs


def _family_kwargs(bundle: str | Path, variant: str | None, encode_kwargs: dict[str, Any]) -> dict[str, Any]:
    """A sparse / multi-vector run's one configuration, built and checked on the driver (as the local job does)."""
    from ..model_kinds import open_model

    kwargs = dict(encode_kwargs)
    if kwargs.get("long_text") not in (None, "truncate") or kwargs.get("chunk_stride") is not None:
        from ..errors import InputValidationError

        raise InputValidationError("--long-text applies to dense bundles; a sparse or multi-vector bundle truncates "
                                   "at max_seq_length, as sentence-transformers does.")
    model = open_model(bundle, variant=variant)
    config = families.family_config(model, truncate_dim=kwargs.get("truncate_dim"),
                                    normalize=bool(kwargs.get("normalize_embeddings")),
                                    precision=kwargs.get("precision", "float32"),
                                    max_active_dims=kwargs.get("max_active_dims"), task=kwargs.get("task"))
    return {"family": (config, kwargs.get("prompt_name"), int(kwargs.get("batch_size", 32)))}


def embed_file_ray(bundle: str | Path, input_path: str | Path, output: str | Path, *, address: str | None = None,
                   workers: int = 1, rows_per_batch: int = 1024, column: str = "text", variant: str | None = None,
                   ship_bundle: bool = False, **encode_kwargs: Any) -> Path:
    """Embed a file on a Ray cluster (``address=None`` starts a local one) and write Parquet.

    ``output`` ending in .parquet gives one file sorted by id (identical to the local job); any other path
    is a folder of Parquet parts as Ray writes them.
    """
    ray = _ray()
    from ..model_kinds import bundle_kind

    if bundle_kind(bundle) in (families.SPARSE, families.MULTI_VECTOR):
        encode_kwargs = _family_kwargs(bundle, variant, encode_kwargs)
    else:
        if encode_kwargs.pop("max_active_dims", None) is not None:
            from ..errors import InputValidationError

            raise InputValidationError("--max-active-dims applies to sparse bundles; for a dense model use "
                                       "--truncate-dim.")
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
