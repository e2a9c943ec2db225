"""Embed a corpus file on this machine: chunked, resumable, never a half-written output."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..errors import InputValidationError
from ..quantization import check_precision
from . import families
from .sinks import chunk_table, join_parts, write_part
from .sources import read_chunks

CALIBRATION_SIZE = 10_000


def _state_for(input_path: Path, settings: dict) -> dict:
    stat = input_path.stat()
    return {"input": str(input_path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "settings": settings}


def partial_dir(output: Path) -> Path:
    return output.with_name(f".{output.name}.partial")


def encode_settings(model: Any, prompt_name: str | None, truncate_dim: int | None, normalize: bool,
                    precision: str, batch_size: int) -> dict:
    return {"model": str(getattr(model, "bundle", None) and model.bundle.root), "variant": model.variant,
            "kind": families.kind_of(model),
            "prompt_name": prompt_name, "truncate_dim": truncate_dim, "normalize": normalize, "precision": precision,
            "batch_size": batch_size}


def calibration_ranges(model: Any, config: Any, input_path: Path, column: str, prompt_name: str | None,
                       batch_size: int, size: int = CALIBRATION_SIZE,
                       calibration_embeddings: str | Path | None = None) -> np.ndarray:
    """int8/uint8 ranges (2, dim) for the whole corpus, fixed before the first chunk: from
    ``calibration_embeddings`` (a .npy of float embeddings, as ``quantize_embeddings`` takes them) or from the first
    ``size`` texts of the input, embedded with the run's configuration in float32."""
    if calibration_embeddings is not None:
        path = Path(calibration_embeddings)
        if not path.is_file():
            raise InputValidationError(f"Calibration embeddings {str(path)!r} do not exist.")
        try:
            data = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise InputValidationError(f"{path} is not a .npy array of float embeddings ({exc}).") from exc
        if data.ndim != 2 or data.dtype.kind != "f" or len(data) < 1:
            raise InputValidationError(f"{path} must hold a 2-D float array of embeddings, got {data.dtype} {data.shape}.")
        if config.truncate_dim is not None and data.shape[1] > config.truncate_dim:
            data = data[:, : config.truncate_dim]
    else:
        sample: list[str] = []
        for texts in read_chunks(input_path, min(size, 4096), column):
            sample.extend(texts[: size - len(sample)])
            if len(sample) >= size:
                break
        if not sample:
            raise InputValidationError(f"{input_path} holds no texts.")
        data = model.encode(sample, batch_size=batch_size, prompt_name=prompt_name,
                            config=config.replace(precision="float32", ranges=None))
    return np.vstack((data.min(axis=0), data.max(axis=0)))


def embed_file(model: Any, input_path: str | Path, output: str | Path, *, chunk_size: int = 4096,
               column: str = "text", prompt_name: str | None = None, truncate_dim: int | None = None,
               normalize: bool = False, precision: str = "float32", batch_size: int = 32, restart: bool = False,
               progress: bool = True, stop_after_chunks: int | None = None,
               calibration_embeddings: str | Path | None = None, calibration_size: int = CALIBRATION_SIZE,
               max_active_dims: int | None = None, task: str | None = None) -> Path | None:
    """Embed every text of ``input_path`` into ``output`` (.parquet or .npy).

    Every chunk runs with one configuration (``model.config`` plus these settings). For int8/uint8 the ranges are
    computed once, before the first chunk, from the first ``calibration_size`` texts (or from
    ``calibration_embeddings``, a .npy of float embeddings), so every chunk shares one scale; they are stored in the
    run's state (reused on resume) and with the output (Parquet schema metadata ``st_runtime.config``; for .npy a
    sidecar ``OUTPUT.config.json``; the bundle and variant that made the rows in ``st_runtime.source``). Finished chunks are kept as parts in a hidden ``.OUTPUT.partial`` folder, so
    an interrupted run resumes from the last completed chunk; the output appears (by rename) only when every chunk
    is done. ``stop_after_chunks`` stops early on purpose (used to test resuming) and returns None.

    A SparseEncoder or MultiVectorEncoder writes Parquet only, with its own columns (see ``families``);
    ``max_active_dims`` (sparse) and ``task`` (a Router route, or a multi-vector query/document side) apply to them.
    """
    input_path, output = Path(input_path), Path(output)
    if output.suffix not in (".parquet", ".npy"):
        raise InputValidationError(f"Output must end in .parquet or .npy, got {output.name!r}.")
    check_precision(precision)
    kind = families.kind_of(model)
    if kind == "dense":
        if max_active_dims is not None:
            raise InputValidationError("--max-active-dims applies to sparse bundles; for a dense model use "
                                       "--truncate-dim.")
        # task: a Router model's route (in the configuration) and, for 'query' / 'document', that task's prompt,
        # as encode_query / encode_document pick it
        prompt_name = families.task_prompt(task, prompt_name, model.prompts)
        config = model.call_config(truncate_dim=truncate_dim, normalize_embeddings=normalize, precision=precision,
                                   task=task)
    else:
        if output.suffix != ".parquet":
            raise InputValidationError(f"A {kind} bundle embeds into Parquet (variable-length rows); name the output "
                                       f"{output.with_suffix('.parquet').name!r} instead of {output.name!r}.")
        config = families.family_config(model, truncate_dim=truncate_dim, normalize=normalize, precision=precision,
                                        max_active_dims=max_active_dims, task=task)
    settings = encode_settings(model, prompt_name, truncate_dim, normalize, precision, batch_size)
    settings["chunk_size"], settings["column"] = chunk_size, column
    settings["config"] = {k: v for k, v in config.to_dict().items() if k != "ranges"}
    if precision.endswith("int8"):
        settings["calibration"] = str(Path(calibration_embeddings).resolve()) if calibration_embeddings else \
            f"first {calibration_size} texts"
    state = _state_for(input_path, settings)
    parts_dir = partial_dir(output)
    previous: dict = {}
    if parts_dir.exists():
        previous = json.loads((parts_dir / "state.json").read_text()) if (parts_dir / "state.json").exists() else {}
        previous_ranges = previous.pop("ranges", None)
        if restart or previous != state:
            if not restart:
                raise InputValidationError(
                    f"{parts_dir} holds an interrupted run with another input or other settings; pass --restart "
                    "to discard it, or repeat the original command to resume it."
                )
            shutil.rmtree(parts_dir)
            previous_ranges = None
        if previous_ranges is not None:
            config = config.replace(ranges=previous_ranges)  # resume with the scale the first chunks used
    if precision.endswith("int8") and config.ranges is None:
        config = config.replace(ranges=calibration_ranges(model, config, input_path, column, prompt_name, batch_size,
                                                          calibration_size, calibration_embeddings))
    parts_dir.mkdir(parents=True, exist_ok=True)
    stored = dict(state, ranges=[list(r) for r in config.ranges] if config.ranges is not None else None)
    (parts_dir / "state.json").write_text(json.dumps(stored))
    parts: list[Path] = []
    next_id = 0
    bar = tqdm(desc=f"embedding {input_path.name}", unit="text", disable=not progress)
    started, done_now, chunks_now = time.perf_counter(), 0, 0
    for index, texts in enumerate(read_chunks(input_path, chunk_size, column)):
        part = parts_dir / f"part-{index:06d}.parquet"
        if not part.exists():
            if stop_after_chunks is not None and chunks_now >= stop_after_chunks:
                bar.close()
                return None
            if kind == "dense":
                embeddings = model.encode(texts, batch_size=batch_size, prompt_name=prompt_name, config=config)
                table = chunk_table(next_id, texts, embeddings)
            else:
                table = families.encode_chunk_table(model, next_id, texts, config, prompt_name, batch_size)
            write_part(part, table)
            done_now += len(texts)
            chunks_now += 1
            bar.set_postfix(texts_per_s=f"{done_now / (time.perf_counter() - started):.0f}")
        parts.append(part)
        next_id += len(texts)
        bar.update(len(texts))
    bar.close()
    if not parts:
        raise InputValidationError(f"{input_path} holds no texts.")
    join_parts(parts, output, metadata={"st_runtime.config": json.dumps(config.to_dict()),
                                        "st_runtime.source": json.dumps({"model": settings["model"],
                                                                         "variant": settings["variant"],
                                                                         "kind": kind})})
    if output.suffix == ".npy":
        sidecar = output.with_name(output.name + ".config.json")
        sidecar.write_text(json.dumps(config.to_dict(), indent=1) + "\n", encoding="utf-8")
    shutil.rmtree(parts_dir)
    return output
