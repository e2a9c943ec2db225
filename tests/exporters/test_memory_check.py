"""An export that cannot fit in memory fails before torch loads the model, saying how much it needs."""

import json
import struct

import numpy as np
import pytest

from st_runtime import InsufficientMemoryError
from st_runtime.export import memory_check


def _safetensors(path, tensors: dict[str, tuple[str, list[int]]]) -> None:
    header, offset = {}, 0
    for name, (dtype, shape) in tensors.items():
        size = int(np.prod(shape)) * memory_check._BYTES[dtype]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * offset)


def test_fp32_size_comes_from_the_headers(tmp_path):
    _safetensors(tmp_path / "model.safetensors", {"a": ("F16", [10, 10]), "b": ("F32", [5]), "ids": ("I64", [3])})
    (tmp_path / "sub").mkdir()
    _safetensors(tmp_path / "sub" / "model.safetensors", {"c": ("BF16", [4, 2])})
    assert memory_check.fp32_bytes(tmp_path) == (100 + 5 + 8) * 4 + 3 * 8


def test_available_memory_is_known_here():
    have = memory_check.available_bytes()
    assert have is None or have > 0


def test_too_big_a_model_fails_before_loading(model_path, tmp_path, monkeypatch):
    from st_runtime.export import source as source_module
    from st_runtime.export.export import export_model

    folder = model_path("bert-mean")
    need = memory_check.fp32_bytes(folder) * memory_check.EXPORT_PEAK_FACTOR
    assert need > 0
    monkeypatch.setattr(memory_check, "available_bytes", lambda: int(need) - 1)
    loaded = []
    monkeypatch.setattr(source_module, "detect_kind", lambda *a: loaded.append(a) or "sentence-transformer")
    with pytest.raises(InsufficientMemoryError, match=r"needs about .* GiB .* is available here"):
        export_model(str(folder), tmp_path / "b")
    assert not loaded and not (tmp_path / "b").exists()
    monkeypatch.setattr(memory_check, "available_bytes", lambda: int(need) + 1)
    memory_check.check_fits(folder)  # one byte more and it goes ahead
