"""openvino-int4: NNCF int4 weight-only compression, its settings searched per model behind the int8 gate.

Group size and mode are chosen per model: group sizes 128, 64, 32 that divide the hidden size (coarsest first:
the smallest file), each with INT4_SYM then INT4_ASYM; the first setting that passes the gate on the selection
split is kept, then the gate split decides whether it is written (``variants._Gatekeeper.search``). NNCF keeps
the embeddings and the last MatMul in int8 (its backup mode); ``ratio`` is the share of the other MatMuls in int4.
"""

from __future__ import annotations

from typing import Sequence

from st_runtime.manifest import VariantSpec

from .onnx_variants import BuildContext
from .openvino_variants import _converted, _save

GROUP_SIZES = (128, 64, 32)
MODES = ("int4_sym", "int4_asym")
RATIO = 1.0


def candidates(ctx: BuildContext, ratio: float = RATIO) -> list[dict]:
    """The settings to try, in order; per-channel (group -1) only when no group size divides the hidden size."""
    hidden = int(ctx.manifest.architecture.get("hidden_size") or 0)
    groups = [g for g in GROUP_SIZES if hidden and hidden % g == 0] or [-1]
    return [{"group_size": g, "mode": mode, "ratio": ratio} for g in groups for mode in MODES]


def build_openvino_int4(ctx: BuildContext, exclude: Sequence[str] = (), group_size: int | None = None,
                        mode: str | None = None, ratio: float = RATIO) -> VariantSpec:
    """NNCF int4 weight-only compression (activations stay f32); defaults: the first candidate."""
    import nncf

    first = candidates(ctx, ratio)[0]
    group_size = first["group_size"] if group_size is None else group_size
    mode = mode or first["mode"]
    compressed = nncf.compress_weights(
        _converted(ctx), mode=nncf.CompressWeightsMode(mode), group_size=group_size, ratio=ratio,
        ignored_scope=nncf.IgnoredScope(names=list(exclude), validate=False) if exclude else None,
    )
    return _save(ctx, compressed, "openvino_model_int4", "int4", weights=f"{mode} weight-only",
                 group_size=group_size, mode=mode, ratio=ratio, fp32_nodes=list(exclude), deterministic=True,
                 auto_rank=1.2)
