"""Embed a corpus file on this machine: chunked, resumable, never a half-written output."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..errors import InputValidationError
from ..quantization import check_precision
from .sinks import chunk_table, join_parts, write_part
from .sources import read_chunks


def _state_for(input_path: Path, settings: dict) -> dict:
    stat = input_path.stat()
    return {"input": str(input_path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "settings": settings}


def partial_dir(output: Path) -> Path:
    return output.with_name(f".{output.name}.partial")


def encode_settings(model: Any, prompt_name: str | None, truncate_dim: int | None, normalize: bool,
                    precision: str, batch_size: int) -> dict:
    return {"model": str(getattr(model, "bundle", None) and model.bundle.root), "variant": model.variant,
            "prompt_name": prompt_name, "truncate_dim": truncate_dim, "normalize": normalize, "precision": precision,
            "batch_size": batch_size}


def embed_file(model: Any, input_path: str | Path, output: str | Path, *, chunk_size: int = 4096,
               column: str = "text", prompt_name: str | None = None, truncate_dim: int | None = None,
               normalize: bool = False, precision: str = "float32", batch_size: int = 32, restart: bool = False,
               progress: bool = True, stop_after_chunks: int | None = None) -> Path | None:
    """Embed every text of ``input_path`` into ``output`` (.parquet or .npy).

    Finished chunks are kept as parts in a hidden ``.OUTPUT.partial`` folder, so an interrupted run resumes
    from the last completed chunk; the output appears (by rename) only when every chunk is done.
    ``stop_after_chunks`` stops early on purpose (used to test resuming) and returns None.
    """
    input_path, output = Path(input_path), Path(output)
    if output.suffix not in (".parquet", ".npy"):
        raise InputValidationError(f"Output must end in .parquet or .npy, got {output.name!r}.")
    check_precision(precision)
    settings = encode_settings(model, prompt_name, truncate_dim, normalize, precision, batch_size)
    settings["chunk_size"], settings["column"] = chunk_size, column
    state = _state_for(input_path, settings)
    parts_dir = partial_dir(output)
    if parts_dir.exists():
        previous = json.loads((parts_dir / "state.json").read_text()) if (parts_dir / "state.json").exists() else {}
        if restart or previous != state:
            if not restart:
                raise InputValidationError(
                    f"{parts_dir} holds an interrupted run with another input or other settings; pass --restart "
                    "to discard it, or repeat the original command to resume it."
                )
            shutil.rmtree(parts_dir)
    parts_dir.mkdir(parents=True, exist_ok=True)
    (parts_dir / "state.json").write_text(json.dumps(state))
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
            embeddings = model.encode(texts, batch_size=batch_size, prompt_name=prompt_name,
                                      truncate_dim=truncate_dim, normalize_embeddings=normalize, precision=precision)
            write_part(part, chunk_table(next_id, texts, embeddings))
            done_now += len(texts)
            chunks_now += 1
            bar.set_postfix(texts_per_s=f"{done_now / (time.perf_counter() - started):.0f}")
        parts.append(part)
        next_id += len(texts)
        bar.update(len(texts))
    bar.close()
    if not parts:
        raise InputValidationError(f"{input_path} holds no texts.")
    join_parts(parts, output)
    shutil.rmtree(parts_dir)
    return output
