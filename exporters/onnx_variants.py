"""ONNX Runtime variants of the fused fp32 graph: fusions, fp16, dynamic and static (QDQ) int8."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from st_runtime.hardware import int8_settings
from st_runtime.manifest import Manifest, VariantSpec

from .calibration import feeds_for
from .external_data import is_external

logger = logging.getLogger(__name__)
# ORT's transformer optimizer knows these families' attention / LayerNorm / GELU patterns.
_OPTIMIZER_TYPES = {"bert": "bert", "roberta": "bert", "xlm-roberta": "bert", "distilbert": "bert", "mpnet": "bert",
                    "camembert": "bert", "electra": "bert", "t5": "t5"}


@dataclass
class BuildContext:
    """What every variant builder needs: the staging folder, the manifest, the fp32 graph and calibration texts."""

    root: Path
    manifest: Manifest
    calibration: Sequence = ()
    model_type: str = ""
    notes: dict = field(default_factory=dict)
    accuracy_control: Any = None  # accuracy_control.AccuracyControl with --max-drop (openvino-int8 only)

    @property
    def fp32(self) -> Path:
        return self.root / self.manifest.variants["onnx"].file

    @property
    def inputs(self) -> list[str]:
        return self.manifest.variants["onnx"].inputs

    @property
    def outputs(self) -> list[str]:
        return self.manifest.variants["onnx"].outputs


def _external(ctx: BuildContext, out: str) -> bool:
    """Whether ``out`` is written with external data (as the fp32 graph is, past 2 GiB); removes an old
    ``<out>.data`` first, since onnx appends to an existing one."""
    (ctx.root / f"{out}.data").unlink(missing_ok=True)
    return is_external(ctx.fp32)


def _spec(ctx: BuildContext, file: str, precision: str, target: str, **settings) -> VariantSpec:
    return VariantSpec(file=file, format="onnx", precision=precision, target=target, inputs=list(ctx.inputs),
                       outputs=list(ctx.outputs), settings=settings)


def build_onnx_opt(ctx: BuildContext, exclude: Sequence[str] = ()) -> VariantSpec:
    """onnxruntime.transformers.optimizer fusions (attention, LayerNorm, GELU, SkipLayerNorm), fp32."""
    from onnxruntime.transformers.optimizer import optimize_model

    model_type = _OPTIMIZER_TYPES.get(ctx.model_type, "bert")
    # Attention fusion needs the head count and width; the optimizer's own guess fails on traced ST graphs.
    heads = int(ctx.manifest.architecture.get("num_attention_heads") or 0)
    hidden = int(ctx.manifest.architecture.get("hidden_size") or 0)
    optimized = optimize_model(str(ctx.fp32), model_type=model_type, num_heads=heads, hidden_size=hidden,
                               opt_level=1, use_gpu=False, only_onnxruntime=False)
    out = "model_opt.onnx"
    optimized.save_model_to_file(str(ctx.root / out), use_external_data_format=_external(ctx, out))
    fused = {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
    return _spec(ctx, out, "fp32", "cpu", optimizer_model_type=model_type, fused_ops=fused, auto_rank=2, exact=True)


def build_onnx_fp16(ctx: BuildContext, exclude: Sequence[str] = ()) -> VariantSpec:
    """fp16 weights and compute for GPUs; inputs/outputs stay fp32, LayerNorm/Softmax/reductions stay fp32."""
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    out = "model_fp16.onnx"
    external = _external(ctx, out)
    if external:  # past 2 GiB the converter's in-memory shape inference cannot serialize the model: infer from files
        shaped = ctx.root / ".fp16-shapes.onnx"
        try:
            onnx.shape_inference.infer_shapes_path(str(ctx.fp32), str(shaped))
            model = onnx.load(str(shaped))
        finally:
            shaped.unlink(missing_ok=True)
    else:
        model = onnx.load(str(ctx.fp32))
    keep_fp32 = sorted(set(DEFAULT_OP_BLOCK_LIST) | {"LayerNormalization", "SimplifiedLayerNormalization", "Softmax",
                                                      "ReduceMean", "ReduceSum", "Pow", "Sqrt", "Erf"})
    converted = convert_float_to_float16(model, keep_io_types=True, op_block_list=keep_fp32,
                                         disable_shape_infer=external)
    onnx.save(converted, str(ctx.root / out), save_as_external_data=external,
              all_tensors_to_one_file=True, location=f"{out}.data")  # past 2 GiB: the fp32 graph's layout
    return _spec(ctx, out, "fp16", "gpu", kept_fp32_ops=keep_fp32, auto_rank=5)


def _isa_settings() -> dict:
    """reduce_range and the ISA it was chosen for (``st_runtime.hardware.int8_settings`` decides, once)."""
    chosen = int8_settings()
    return {"isa": chosen["isa"], "reduce_range": chosen["reduce_range"], "isa_reason": chosen["reason"]}


def build_onnx_int8_dynamic(ctx: BuildContext, exclude: Sequence[str] = ()) -> VariantSpec:
    """onnxruntime dynamic int8 (weights per channel, activations per call), MatMul weights only."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = "model_int8_dynamic.onnx"
    isa = _isa_settings()
    quantize_dynamic(str(ctx.fp32), str(ctx.root / out), weight_type=QuantType.QInt8, per_channel=True,
                     reduce_range=isa["reduce_range"], op_types_to_quantize=["MatMul"], nodes_to_exclude=list(exclude),
                     extra_options={"MatMulConstBOnly": True}, use_external_data_format=_external(ctx, out))
    return _spec(ctx, out, "int8", "cpu", **isa, per_channel=True,
                 fp32_nodes=list(exclude), deterministic=False, auto_rank=3)


class _Reader:
    """onnxruntime CalibrationDataReader over tokenized calibration texts; ``set_range`` lets onnxruntime collect
    them a slice at a time."""

    def __init__(self, feeds) -> None:
        self._feeds = list(feeds)
        self._iter = iter(self._feeds)

    def __len__(self) -> int:
        return len(self._feeds)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._iter = iter(self._feeds[start_index:end_index])

    def get_next(self):
        return next(self._iter, None)


# Activation-range methods tried per model for static int8, the best on the selection split kept (MinMax first:
# the fastest to calibrate; Percentile and Entropy clip the outliers that MinMax stretches every range for).
CALIBRATION_METHODS = ("MinMax", "Percentile", "Entropy")


def calibration_candidates(ctx: BuildContext) -> list[dict]:
    """The calibration methods ``variants._Gatekeeper`` tries for onnx-int8-static."""
    return [{"calibration_method": method} for method in CALIBRATION_METHODS]


def build_onnx_int8_static(ctx: BuildContext, exclude: Sequence[str] = (), calibration_method: str = "MinMax"
                           ) -> VariantSpec:
    """onnxruntime static int8 in QDQ format, activation ranges from the calibration texts by ``calibration_method``
    (onnxruntime's MinMax, Percentile at 99.999 or Entropy); deterministic."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    out = "model_int8_static.onnx"
    isa = _isa_settings()
    reader = _Reader(feeds_for(ctx.root, ctx.manifest, ctx.inputs, list(ctx.calibration)))
    extra: dict[str, Any] = {"MatMulConstBOnly": True}
    if calibration_method != "MinMax":
        # onnxruntime's histogram collector stacks every text's activations into one array, which fails for texts
        # of different lengths; its strided collection ("CalibStridedMinMax", used by every method) feeds one text
        # per call and merges the histograms instead.
        extra["CalibStridedMinMax"] = 1
    quantize_static(str(ctx.fp32), str(ctx.root / out), reader, quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                    reduce_range=isa["reduce_range"], op_types_to_quantize=["MatMul"], nodes_to_exclude=list(exclude),
                    calibrate_method=CalibrationMethod[calibration_method], extra_options=extra,
                    use_external_data_format=_external(ctx, out))
    for leftover in ctx.root.glob("*augmented*"):
        leftover.unlink()
    return _spec(ctx, out, "int8", "cpu", **isa, per_channel=True, calibration_method=calibration_method,
                 calibration_texts=len(ctx.calibration), fp32_nodes=list(exclude), deterministic=True, auto_rank=3)
