"""``onnx-int8-wo``: int8 weight-only ONNX graph, the smallest file ONNX Runtime runs without changing activations.

Every weight MatMul becomes ONNX Runtime's ``MatMulNBits`` with 8-bit symmetric blocks (block size 128 along the
input axis; activations stay fp32, so results do not depend on the batch), and each vocabulary-sized embedding table
(a Gather initializer with at least ``MIN_TABLE_ROWS`` rows, read only by Gathers) is stored as int8 with one fp32
scale per row: ``Gather(int8 table) -> Cast -> Mul(Gather(scales))``. ``MatMulNBitsQuantizer`` cannot do the
tables itself (its ``GatherBlockQuantized`` path is 4-bit only in onnxruntime 1.32), and on MiniLM the table is half
the weights (30522 x 384). Gated like every int8 variant.
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

from st_runtime.config import SMALL_BATCH_TOKENS
from st_runtime.manifest import VariantSpec

from .onnx_variants import BuildContext, _external, _spec

logger = logging.getLogger(__name__)

BLOCK_SIZE = 128
MIN_TABLE_ROWS = 4096  # vocabulary tables; position / token-type tables are small and stay fp32
OUT = "model_int8_wo.onnx"


def _quantize_matmuls(model, exclude: Sequence[str]):
    """MatMul weights -> MatMulNBits 8-bit; the default-domain opset and IR version stay the source's (the quantizer
    raises them for int4 types it does not use at 8 bits, which breaks ops such as ReduceL2's ``axes``)."""
    from onnxruntime.quantization import QuantFormat
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    opset = {o.domain: o.version for o in model.opset_import}
    ir_version = model.ir_version
    config = DefaultWeightOnlyQuantConfig(block_size=BLOCK_SIZE, is_symmetric=True, quant_format=QuantFormat.QOperator,
                                          op_types_to_quantize=("MatMul",), quant_axes=(("MatMul", 0),), bits=8)
    quantizer = MatMulNBitsQuantizer(model, nodes_to_exclude=list(exclude), algo_config=config)
    previous = logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").level
    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)
    try:
        quantizer.process()
    finally:
        logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(previous)
    out = quantizer.model.model
    for entry in out.opset_import:
        if entry.domain in ("", "ai.onnx") and "" in opset:
            entry.version = opset[""]
    out.ir_version = ir_version
    return out


def quantize_tables(model) -> list[str]:
    """Store each large Gather-only embedding table as int8 rows with fp32 per-row scales; return their names."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    done = []
    for name, init in list(inits.items()):
        users = consumers.get(name, [])
        if len(init.dims) != 2 or init.dims[0] < MIN_TABLE_ROWS or init.data_type != TensorProto.FLOAT or not users:
            continue
        if any(n.op_type != "Gather" or n.input[0] != name or
               any(a.name == "axis" and a.i != 0 for a in n.attribute) for n in users):
            continue  # tied to a MatMul (an LM head) or gathered along another axis: left as it is
        table = numpy_helper.to_array(init).astype(np.float32)
        scale = np.abs(table).max(axis=1) / 127.0
        scale[scale == 0] = 1.0
        codes = np.clip(np.rint(table / scale[:, None]), -127, 127).astype(np.int8)
        graph.initializer.remove(init)
        graph.initializer.extend([numpy_helper.from_array(codes, f"{name}_int8"),
                                  numpy_helper.from_array(scale[:, None].astype(np.float32), f"{name}_row_scale")])
        for node in users:
            out, ids = node.output[0], node.input[1]
            replacement = [
                helper.make_node("Gather", [f"{name}_int8", ids], [f"{out}_int8"], axis=0, name=f"{node.name}_int8"),
                helper.make_node("Cast", [f"{out}_int8"], [f"{out}_codes"], to=TensorProto.FLOAT,
                                 name=f"{node.name}_cast"),
                helper.make_node("Gather", [f"{name}_row_scale", ids], [f"{out}_scale"], axis=0,
                                 name=f"{node.name}_scale"),
                helper.make_node("Mul", [f"{out}_codes", f"{out}_scale"], [out], name=f"{node.name}_dequant"),
            ]
            position = list(graph.node).index(node)
            graph.node.remove(node)
            for offset, new in enumerate(replacement):
                graph.node.insert(position + offset, new)
        done.append(name)
    return done


def build_onnx_int8_wo(ctx: BuildContext, exclude: Sequence[str] = ()) -> VariantSpec:
    """int8 weight-only: MatMulNBits (8-bit, block 128, symmetric) and int8 embedding rows; activations fp32."""
    import onnx

    model = _quantize_matmuls(onnx.load(str(ctx.fp32)), exclude)
    tables = quantize_tables(model)
    onnx.save_model(model, str(ctx.root / OUT), save_as_external_data=_external(ctx, OUT),  # as the fp32 graph
                    all_tensors_to_one_file=True, location=f"{OUT}.data")
    return _spec(ctx, OUT, "int8", "cpu", weights="int8 (weight-only)", matmul="MatMulNBits bits=8 symmetric",
                 block_size=BLOCK_SIZE, int8_tables=tables, fp32_nodes=list(exclude), deterministic=True,
                 auto_rank=0.9, max_batch_tokens=SMALL_BATCH_TOKENS)  # made for size: its blocks are dequantized per call, so auto prefers fp32 unmeasured
