"""OpenVINO IR variants converted from the fused fp32 graph: fp32, fp16 weights, bf16, NNCF int8 (static, weight-only)."""

from __future__ import annotations

from typing import Sequence

from st_runtime.manifest import VariantSpec

from .calibration import feeds_for
from .onnx_variants import BuildContext


def _require():
    try:
        import openvino as ov
    except ImportError as exc:
        raise ImportError("OpenVINO variants need the openvino extra: pip install 'st-runtime[quantize]'") from exc
    return ov


def _save(ctx: BuildContext, model, stem: str, precision: str, compress_to_fp16: bool = False, **settings) -> VariantSpec:
    ov = _require()
    xml = f"{stem}.xml"
    ov.save_model(model, str(ctx.root / xml), compress_to_fp16=compress_to_fp16)
    settings.setdefault("inference_precision", "f32")  # OpenVINO's CPU default is bf16 where the CPU has it: inexact
    return VariantSpec(file=xml, weights_file=f"{stem}.bin", format="openvino", precision=precision, target="cpu",
                       inputs=list(ctx.inputs), outputs=list(ctx.outputs), settings=settings)


def _converted(ctx: BuildContext):
    return _require().convert_model(str(ctx.fp32))


def build_openvino(ctx: BuildContext, exclude: Sequence[str] = ()) -> VariantSpec:
    """OpenVINO IR, fp32 weights, run with INFERENCE_PRECISION_HINT=f32."""
    return _save(ctx, _converted(ctx), "openvino_model", "fp32", auto_rank=2, exact=True)


def build_openvino_fp16(ctx: BuildContext, exclude: Sequence[str] = ()) -> VariantSpec:
    """OpenVINO IR with fp16-compressed weights (half the file), computed in f32."""
    return _save(ctx, _converted(ctx), "openvino_model_fp16", "fp16", compress_to_fp16=True, auto_rank=1,
                 weights="fp16")


BF16_ISAS = ["avx512_bf16", "amx_bf16"]


def build_openvino_bf16(ctx: BuildContext, exclude: Sequence[str] = ()) -> VariantSpec:
    """fp16-stored weights computed in bf16 (INFERENCE_PRECISION_HINT=bf16): for CPUs with AVX512-BF16 or AMX.

    On MiniLM with AVX512-BF16 it ran 1.6x faster than f32 at max abs 1.2e-3; CPUs without bf16 run it in f32.
    """
    return _save(ctx, _converted(ctx), "openvino_model_bf16", "bf16", compress_to_fp16=True,
                 inference_precision="bf16", isa=BF16_ISAS, weights="fp16", auto_rank=2.5)


# SmoothQuant alphas tried per model on the selection split (nncf's transformer default 0.95 first). Off (-1) is
# not tried: on MiniLM it cost 5 points of top-10 overlap (0.885 against 0.931 with the default).
SMOOTH_QUANT_ALPHAS = (0.95, 0.75, 0.5)


def smooth_quant_candidates(ctx: BuildContext) -> list[dict]:
    """The SmoothQuant alphas ``variants._Gatekeeper`` tries for openvino-int8, best on the selection split kept."""
    return [{"smooth_quant_alpha": alpha} for alpha in SMOOTH_QUANT_ALPHAS]


def build_openvino_int8(ctx: BuildContext, exclude: Sequence[str] = (), smooth_quant_alpha: float = 0.95
                        ) -> VariantSpec:
    """NNCF post-training static int8 (transformer preset, SmoothQuant with ``smooth_quant_alpha``; -1: off) on the
    calibration texts; with ``ctx.accuracy_control`` (``--max-drop``) through ``nncf.quantize_with_accuracy_control``."""
    import nncf
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        AdvancedSmoothQuantParameters,
        OverflowFix,
    )

    from st_runtime.hardware import int8_settings

    isa = int8_settings()  # overflow_fix for this CPU: first_layer_only without VNNI (NNCF's advice), else disable
    feeds = list(feeds_for(ctx.root, ctx.manifest, ctx.inputs, list(ctx.calibration)))
    advanced = AdvancedQuantizationParameters(
        overflow_fix=OverflowFix(isa["overflow_fix"]),
        smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=smooth_quant_alpha))
    common = {"model_type": nncf.ModelType.TRANSFORMER, "subset_size": len(feeds),
              "ignored_scope": nncf.IgnoredScope(names=list(exclude), validate=False) if exclude else None}
    control = {}
    if ctx.accuracy_control is not None:
        quantized, control = ctx.accuracy_control.quantize(ctx, _converted(ctx), nncf.Dataset(feeds), common, advanced)
    else:
        quantized = nncf.quantize(_converted(ctx), nncf.Dataset(feeds), advanced_parameters=advanced, **common)
    extra = {"accuracy_control": control} if control else {}
    return _save(ctx, quantized, "openvino_model_int8", "int8", calibration_texts=len(feeds),
                 smooth_quant_alpha=smooth_quant_alpha, fp32_nodes=list(exclude), deterministic=True, auto_rank=4,
                 built_on_isa=isa["isa"], overflow_fix=isa["overflow_fix"], isa_reason=isa["reason"], **extra)


def build_openvino_int8_weights(ctx: BuildContext, exclude: Sequence[str] = ()) -> VariantSpec:
    """NNCF int8 weight-only compression (activations stay f32): smaller file, no calibration needed."""
    import nncf

    compressed = nncf.compress_weights(
        _converted(ctx), ignored_scope=nncf.IgnoredScope(names=list(exclude), validate=False) if exclude else None,
    )
    return _save(ctx, compressed, "openvino_model_int8_wo", "int8", weights="int8 (weight-only)",
                 fp32_nodes=list(exclude), deterministic=True, auto_rank=1.5)
