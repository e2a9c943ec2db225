"""Graph inputs from texts, for calibration and sensitivity analysis of quantized variants."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from st_runtime.manifest import Manifest
from st_runtime.tokenization import TextTokenizer

_LAYER = re.compile(r"(layer|layers|block|blocks|h)\.\d+")


def feeds_for(bundle_dir: Path, manifest: Manifest, inputs: Sequence[str], items: Sequence, batch: int = 1
              ) -> Iterator[dict[str, np.ndarray]]:
    """Feed dicts with exactly the graph's ``inputs`` for texts (or pairs), ``batch`` at a time."""
    tokenizer = TextTokenizer.from_file(bundle_dir / manifest.tokenizer.file, manifest.tokenizer)
    for start in range(0, len(items), batch):
        encoded = tokenizer(list(items[start : start + batch]))
        feed = {}
        for name in inputs:
            if name == "prompt_length":
                feed[name] = np.zeros(1, dtype=np.int64)
            elif name in encoded:
                feed[name] = encoded[name]
            else:
                feed[name] = np.zeros_like(encoded["input_ids"])
        yield feed


def weight_matmuls(onnx_path: Path) -> list[str]:
    """Names of MatMul nodes whose second input is a weight (initializer): the ones int8 quantizes."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    weights = {init.name for init in graph.initializer}
    return [n.name for n in graph.node if n.op_type in ("MatMul", "Gemm") and len(n.input) > 1 and n.input[1] in weights]


def role_of(node_name: str) -> str:
    """The node's role across layers ('/encoder/layer.*/output/dense/MatMul'): the unit of fp32 fallback."""
    return _LAYER.sub(lambda m: f"{m.group(1)}.*", node_name)


def roles(node_names: Sequence[str]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name in node_names:
        grouped.setdefault(role_of(name), []).append(name)
    return grouped
