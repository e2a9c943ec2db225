"""Models near or past the 2 GiB protobuf limit: trace the graph without its weights, then stream the weights into
``<graph>.data`` one tensor at a time.

torch's TorchScript exporter, given the weights, first encodes every one of them into an in-memory GraphProto just
to learn whether the graph passes 2 GiB (and only then writes them to files): a transient copy of the whole model,
plus the largest tensor once more. Traced with ``export_params=False`` the graph takes each weight as an input named
after its state-dict key; ``attach`` turns those inputs into external initializers written straight from the torch
tensors, and folds the ``Transpose`` of each Linear weight (what the exporter's constant folding would have done)
one tensor at a time.

Even without ``export_params`` the exporter runs ONNX shape inference over the whole graph twice with every weight
as an initializer (a copy of the model in a protobuf, then its serialization: 4.5 GB more at the peak for a 2.25 GB
model). ``shape_inference_without_weights`` hands that pass only the small constants (weights never decide a
shape); the graph written is node for node the same. Peak memory of the trace: the torch model plus one weight.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import torch

from .external_data import ALIGN, PROTOBUF_LIMIT, point

# From this many bytes of parameters the graph is traced without weights (the rest of a proto is small).
WEIGHTLESS_FROM = PROTOBUF_LIMIT - (128 << 20)


# Constants up to this size still reach the exporter's shape inference (shapes, masks, position ids).
_SHAPE_CONSTANT_BYTES = 1 << 20


@contextlib.contextmanager
def shape_inference_without_weights() -> Iterator[None]:
    """While tracing, torch's graph-level ONNX shape inference sees no tensor over 1 MiB (see the module doc).

    Patches ``torch._C._jit_pass_onnx_graph_shape_type_inference`` for the duration only; a torch without that pass
    is left alone.
    """
    original = getattr(torch._C, "_jit_pass_onnx_graph_shape_type_inference", None)
    if original is None:
        yield
        return

    def small_constants_only(graph, params_dict, opset):
        small = {k: v for k, v in params_dict.items() if v.numel() * v.element_size() <= _SHAPE_CONSTANT_BYTES}
        return original(graph, small, opset)

    torch._C._jit_pass_onnx_graph_shape_type_inference = small_constants_only
    try:
        yield
    finally:
        torch._C._jit_pass_onnx_graph_shape_type_inference = original


def param_bytes(module: torch.nn.Module) -> int:
    """Bytes of the module's parameters and buffers, each storage counted once (as the exporter sees them)."""
    return sum(t.numel() * t.element_size() for t in torch.jit._unique_state_dict(module, keep_vars=True).values())


def attach(traced: Path, module: torch.nn.Module, dest: Path) -> int:
    """Write ``traced`` (exported with ``export_params=False``) to ``dest`` with the module's weights as external
    initializers in ``<dest>.data``; returns how many weights were written."""
    import onnx

    model = onnx.load(str(traced))
    graph = model.graph
    state = torch.jit._unique_state_dict(module, keep_vars=True)
    elem_types = {i.name: i.type.tensor_type.elem_type for i in graph.input if i.name in state}
    folded: dict[str, tuple[str, list[int]]] = {}  # Transpose output -> (weight, perm)
    for node in list(graph.node):
        if node.op_type == "Transpose" and node.input[0] in elem_types:
            perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
            folded[node.output[0]] = (node.input[0], perm or list(range(state[node.input[0]].dim()))[::-1])
            graph.node.remove(node)
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    data_name = f"{dest.name}.data"
    written = 0
    with open(dest.parent / data_name, "wb") as out:
        def write(name: str, tensor: torch.Tensor, elem_type: int) -> None:
            tensor = tensor.detach().contiguous()
            out.write(b"\0" * (-out.tell() % ALIGN))
            offset = out.tell()
            out.write(tensor.reshape(-1).view(torch.uint8).numpy().data)
            init = graph.initializer.add()
            init.name, init.data_type = name, elem_type
            init.dims.extend(tensor.shape)
            point(init, data_name, offset, out.tell() - offset)

        for name, elem_type in elem_types.items():
            if name in used:
                write(name, state[name], elem_type)
                written += 1
        for output, (name, perm) in folded.items():
            write(output, state[name].detach().permute(perm), elem_types[name])
            written += 1
    kept = [i for i in graph.input if i.name not in elem_types]
    del graph.input[:]
    graph.input.extend(kept)
    onnx.save_model(model, str(dest))
    return written
