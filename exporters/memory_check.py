"""Fail an export early when the model cannot fit: its fp32 size, from the weight files' headers, against the
memory this process may use, before torch loads a byte."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from st_runtime.errors import InsufficientMemoryError

# Peak memory of an export as a multiple of the model's fp32 size: the torch model, the traced graph being written
# and the runtime session that checks parity (weights of ONNX graphs are memory-mapped from external data).
EXPORT_PEAK_FACTOR = 3.0
_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
          "F8_E4M3": 1, "F8_E5M2": 1}


def fp32_bytes(model_dir: Path) -> int:
    """The model's parameters in fp32 bytes, summed from every ``*.safetensors`` header under ``model_dir``
    (floating tensors count 4 bytes per element whatever their stored dtype); ``*.bin`` files count at their size."""
    total = 0
    for path in sorted(Path(model_dir).rglob("*.safetensors")):
        with path.open("rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(length))
        for name, info in header.items():
            if name == "__metadata__":
                continue
            count = 1
            for dim in info["shape"]:
                count *= int(dim)
            dtype = info["dtype"]
            total += count * (4 if dtype.startswith(("F", "BF")) else _BYTES.get(dtype, 4))
    if total == 0:
        total = sum(p.stat().st_size for p in Path(model_dir).rglob("*.bin"))
    return total


def available_bytes() -> int | None:
    """Memory this process may still use: MemAvailable, capped by a cgroup (container) limit; None if unknown."""
    available = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except OSError:
        return None
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = Path(limit_file).read_text().strip()
            if limit != "max" and int(limit) < (1 << 60):
                room = int(limit) - int(Path(usage_file).read_text().strip())
                available = room if available is None else min(available, room)
            break
        except (OSError, ValueError):
            continue
    return available


def check_fits(model_dir: Path, factor: float = EXPORT_PEAK_FACTOR) -> None:
    """Raise ``InsufficientMemoryError`` (saying how much is needed and available) when ``factor`` x the model's
    fp32 size exceeds the memory available now."""
    need = int(fp32_bytes(model_dir) * factor)
    have = available_bytes()
    if have is not None and need > have:
        gib = 1024 ** 3
        raise InsufficientMemoryError(
            f"Exporting {Path(model_dir).name} needs about {need / gib:.1f} GiB ({factor:g} x its "
            f"{need / factor / gib:.1f} GiB of fp32 weights) and {have / gib:.1f} GiB is available here. Free memory "
            "(other processes, a smaller --variants list does not help: the fp32 trace comes first) or export on a "
            "machine with more.")
