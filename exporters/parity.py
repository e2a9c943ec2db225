"""Compare an exported bundle with the torch model it came from, on real text."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from st_runtime.errors import ParityError


@dataclass
class ParityReport:
    """Figures of one comparison; ``max_abs`` is the contract for fp32 variants."""

    texts: int
    max_abs: float
    mean_abs: float
    min_cosine: float
    mean_cosine: float
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "texts": self.texts,
            "max_abs": float(self.max_abs),
            "mean_abs": float(self.mean_abs),
            "min_cosine": float(self.min_cosine),
            "mean_cosine": float(self.mean_cosine),
            **self.details,
        }


def compare(reference: np.ndarray, candidate: np.ndarray, **details: Any) -> ParityReport:
    """Element and cosine agreement of two (n, d) arrays."""
    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    if ref.shape != cand.shape:
        raise ParityError(f"Shape mismatch: torch gives {ref.shape}, the graph gives {cand.shape}.")
    diff = np.abs(ref - cand)
    norms = np.linalg.norm(ref, axis=-1) * np.linalg.norm(cand, axis=-1)
    cos = (ref * cand).sum(-1) / np.maximum(norms, 1e-12)
    cos = np.where(norms < 1e-12, 1.0, cos)  # two zero vectors agree
    return ParityReport(
        texts=len(ref),
        max_abs=float(diff.max()) if diff.size else 0.0,
        mean_abs=float(diff.mean()) if diff.size else 0.0,
        min_cosine=float(cos.min()) if cos.size else 1.0,
        mean_cosine=float(cos.mean()) if cos.size else 1.0,
        details=details,
    )


def check_tokenization(reference: dict, candidate: dict, what: str) -> None:
    """The runtime tokenizer must give the same ids and mask as the model's own tokenizer."""
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        if key not in reference:
            continue
        ref = np.asarray(reference[key])
        cand = candidate[key]
        if ref.shape != cand.shape or not np.array_equal(ref, cand):
            rows = (
                np.nonzero((ref != cand).any(axis=1))[0][:5].tolist() if ref.shape == cand.shape else "shape"
            )
            raise ParityError(
                f"The exported tokenizer differs from the model's tokenizer on {what} ({key}, rows {rows}); "
                "this tokenizer is not supported yet."
            )


def require(report: ParityReport, atol: float, what: str) -> None:
    """Raise ParityError unless max_abs <= atol."""
    if not np.isfinite(report.max_abs) or report.max_abs > atol:
        raise ParityError(
            f"{what}: the exported graph differs from torch by max abs {report.max_abs:.3g} (allowed {atol:g}); "
            f"mean cosine {report.mean_cosine:.6f}. Nothing was written."
        )


def prompt_checks(st: Any, runtime: Any, texts: list[str], atol: float,
                  what: str = "sentence_embedding") -> dict[str, float]:
    """``st.encode`` vs ``runtime.encode`` of ``texts`` with each non-empty prompt of the runtime model, each required
    within ``atol`` (ParityError names ``what`` and the prompt); {"prompt:<name>": max abs}."""
    checks: dict[str, float] = {}
    for name, prompt in runtime.prompts.items():
        if prompt:
            report = compare(st.encode(texts, prompt_name=name), runtime.encode(texts, prompt_name=name))
            require(report, atol, f"{what} with prompt {name!r}")
            checks[f"prompt:{name}"] = report.max_abs
    return checks
