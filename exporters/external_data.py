"""ONNX graphs past the 2 GiB protobuf limit: their tensors live in one ``<graph>.data`` file beside them.

torch's TorchScript exporter notices a graph whose weights pass 2 GiB and writes each tensor into its own file next
to the graph (the protobuf it builds holds only references, never the bytes). ``gather`` streams those files into
one ``<graph>.data`` (each tensor at a page-aligned offset, so ONNX Runtime can map it) and removes them, without
loading any tensor into memory. The variant builders ask ``is_external`` to write their own graphs the same way.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

ALIGN = 4096  # page size: a tensor at an aligned offset can be memory-mapped as is
PROTOBUF_LIMIT = 2**31  # bytes; a serialized ModelProto must stay below it


def is_external(path: Path) -> bool:
    """Whether the graph at ``path`` keeps (some of) its tensors in external data files."""
    import onnx
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    model = onnx.load(str(path), load_external_data=False)
    return any(uses_external_data(t) for t in _get_all_tensors(model))


def data_files(path: Path) -> set[str]:
    """The external data file names (relative to the graph's folder) the graph at ``path`` refers to."""
    import onnx
    from onnx.external_data_helper import ExternalDataInfo, _get_all_tensors, uses_external_data

    model = onnx.load(str(path), load_external_data=False)
    return {ExternalDataInfo(t).location for t in _get_all_tensors(model) if uses_external_data(t)}


def gather(source: Path, dest: Path) -> bool:
    """Write the graph at ``source`` to ``dest`` with every external tensor moved into ``<dest>.data``.

    The tensor files ``source`` refers to are deleted as they are copied (disk use grows by one tensor at most).
    Returns False, changing nothing, when ``source`` has no external data.
    """
    import onnx
    from onnx.external_data_helper import ExternalDataInfo, _get_all_tensors, uses_external_data

    model = onnx.load(str(source), load_external_data=False)
    tensors = [t for t in _get_all_tensors(model) if uses_external_data(t)]
    if not tensors:
        return False
    data_name = f"{dest.name}.data"
    sources = set()
    with open(dest.parent / data_name, "wb") as out:
        for tensor in tensors:
            info = ExternalDataInfo(tensor)
            pad = -out.tell() % ALIGN
            out.write(b"\0" * pad)
            offset = out.tell()
            file = source.parent / info.location
            with open(file, "rb") as src:
                src.seek(info.offset or 0)
                _copy(src, out, info.length)
            point(tensor, data_name, offset, out.tell() - offset)
            sources.add(file)
    onnx.save_model(model, str(dest))
    for file in sources:
        if file.resolve() != (dest.parent / data_name).resolve():
            file.unlink(missing_ok=True)
    return True


def point(tensor, location: str, offset: int, length: int) -> None:
    """Make ``tensor`` refer to ``length`` bytes at ``offset`` of ``location`` (onnx's own helper wants the bytes)."""
    from onnx import TensorProto

    tensor.data_location = TensorProto.EXTERNAL
    del tensor.external_data[:]
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value


def _copy(src, out, length: int | None) -> None:
    if length is None:
        shutil.copyfileobj(src, out, 16 << 20)
        return
    left = length
    while left:
        chunk = src.read(min(left, 16 << 20))
        if not chunk:
            raise OSError(f"external data file {getattr(src, 'name', '?')} ends {left} bytes early")
        out.write(chunk)
        left -= len(chunk)


def trace_folder(path: Path) -> Path:
    """A fresh folder beside ``path`` (so inside the staging folder) where the exporter may spill tensor files."""
    folder = path.parent / f".trace-{path.stem}"
    if folder.exists():
        shutil.rmtree(folder)
    os.makedirs(folder)
    return folder
