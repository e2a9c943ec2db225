"""Static-shape variants: an OpenVINO variant's IR reshaped to fixed (batch, length) buckets, one IR per bucket.

What NPUs and fixed-shape runtimes need. The weights do not change with the shape, so when the reshaped IR's
``.bin`` equals its source's byte for byte (it does for every variant measured so far) the buckets share the source
variant's ``.bin`` and only the small ``.xml`` files are added. The runtime side is ``st_runtime.shape_buckets``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from st_runtime.bundle import sha256_file
from st_runtime.errors import InputValidationError
from st_runtime.manifest import Manifest, VariantSpec
from st_runtime.shape_buckets import Bucket, parse_shapes

SUFFIX = "-static-shapes"


def static_name(base: str) -> str:
    return f"{base}{SUFFIX}"


def is_static(spec: VariantSpec) -> bool:
    return bool(spec.settings.get("static_shapes"))


def check_buckets(manifest: Manifest, shapes: str | Sequence) -> list[Bucket]:
    """Parsed buckets, refused when the longest cannot hold max_seq_length or the model pads on the left."""
    buckets = parse_shapes(shapes)
    longest = max(b.length for b in buckets)
    needed = manifest.tokenizer.max_seq_length or manifest.tokenizer.model_max_length
    if needed and longest < needed:
        raise InputValidationError(
            f"The longest static shape holds {longest} tokens but this model truncates at {needed} "
            f"(max_seq_length): longer texts could not run. Add a bucket of length >= {needed}, e.g. "
            f"--static-shapes {','.join(b.label for b in buckets)},{min(b.batch for b in buckets)}x{needed}.")
    if not needed:
        raise InputValidationError("This model has no max_seq_length, so no static shape can hold every text.")
    if manifest.tokenizer.padding_side == "left":
        raise InputValidationError(
            "Static shapes pad every batch to a bucket; this model pads on the left, where extra padding moves its "
            "tokens to other positions and changes the result. Use the dynamic OpenVINO variants for it.")
    return buckets


def _require():
    try:
        import openvino as ov
    except ImportError as exc:
        raise ImportError("Static-shape variants need OpenVINO: pip install 'st-runtime[quantize]'") from exc
    return ov


def _sequence_outputs(model) -> list[str]:
    """Outputs whose axis 1 is the (dynamic) token axis in the source IR."""
    from st_runtime.backends import _KNOWN_NAMES, _port_name

    out = []
    for port in model.outputs:
        shape = port.get_partial_shape()
        if shape.rank.is_static and shape.rank.get_length() >= 2 and shape[1].is_dynamic:
            out.append(_port_name(port, _KNOWN_NAMES))
    return out


def remove_files(root: Path, manifest: Manifest, name: str) -> None:
    """Delete the files a static-shape variant alone owns (never the ``.bin`` it shares with its source)."""
    spec = manifest.variants.get(name)
    if spec is None:
        return
    shared = {s.weights_file for n, s in manifest.variants.items() if n != name}
    for entry in spec.settings.get("static_shapes", ()):
        for key in ("file", "weights_file"):
            rel = entry.get(key)
            if rel and rel not in shared and (root / rel).exists():
                (root / rel).unlink()


def build_static(root: Path, manifest: Manifest, base_name: str, buckets: Sequence[Bucket]) -> VariantSpec:
    """Reshape ``base_name``'s IR to each bucket (``model.reshape``, then save) and describe the new variant."""
    ov = _require()
    base = manifest.variants[base_name]
    remove_files(root, manifest, static_name(base_name))
    core = ov.Core()
    base_hash = sha256_file(root / base.weights_file) if base.weights_file else None
    stem = Path(base.file).stem
    entries = []
    for bucket in buckets:
        model = core.read_model(str(root / base.file))
        model.reshape({port: ov.PartialShape([bucket.batch, bucket.length])
                       if port.get_partial_shape().rank.get_length() == 2 else port.get_partial_shape()
                       for port in model.inputs})
        xml, weights = f"{stem}_{bucket.label}.xml", f"{stem}_{bucket.label}.bin"
        ov.save_model(model, str(root / xml), compress_to_fp16=False)
        if base_hash and sha256_file(root / weights) == base_hash:
            (root / weights).unlink()
            weights = base.weights_file
        entries.append({"batch": bucket.batch, "length": bucket.length, "file": xml, "weights_file": weights})
    settings = {k: v for k, v in base.settings.items() if k not in ("forced", "footprint", "search")}
    settings.update(
        static_shapes=entries, static_of=base_name, auto_rank=0,
        sequence_outputs=_sequence_outputs(core.read_model(str(root / base.file))),
        pad_token_id=manifest.tokenizer.pad_token_id, padding_side=manifest.tokenizer.padding_side,
    )
    return VariantSpec(file=entries[0]["file"], weights_file=entries[0]["weights_file"], format="openvino",
                       precision=base.precision, target=base.target, inputs=list(base.inputs),
                       outputs=list(base.outputs), settings=settings)


def compare_with_dynamic(root: Path, manifest: Manifest, static: str, kind: str) -> dict[str, Any]:
    """Max abs difference between the static-shape variant and its dynamic source on the gate split's texts, in
    batches of 32 and of 7 (several buckets, splits and padded rows), every output but the token-level ones."""
    from st_runtime.bundle import Bundle
    from st_runtime.loading import build_runner

    from .gates import held_out_texts

    queries, passages = held_out_texts(48, 48, "gate")
    items: list = queries + passages
    if kind == "cross-encoder":
        items = list(zip(queries, passages))
    bundle = Bundle(root=root, manifest=manifest, verify=False)
    base = manifest.variants[static].settings["static_of"]
    runners = {name: build_runner(bundle, name, None, None)[1] for name in (base, static)}
    sequence = set(manifest.variants[static].settings.get("sequence_outputs", ()))
    outputs = [o for o in runners[base].session.output_names if o not in sequence]
    worst = 0.0
    for batch_size in (32, 7):
        results = {}
        for name, runner in runners.items():
            got = {}
            for indices, _, out in runner.iter_batches(items, batch_size, outputs=outputs):
                for row, index in enumerate(indices):
                    got[int(index)] = np.concatenate([np.ravel(out[o][row]) for o in outputs])
            results[name] = np.stack([got[i] for i in range(len(items))])
        worst = max(worst, float(np.abs(results[base].astype(np.float64) - results[static]).max()))
    return {"max_abs_vs_dynamic": worst, "compared_with": base, "texts_vs_dynamic": len(items)}
