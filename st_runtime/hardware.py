"""What this machine offers: usable CPU cores (container quota aware) and instruction-set flags."""

from __future__ import annotations

import functools
import math
import os
import platform
from pathlib import Path


def _cgroup_cpu_quota() -> float | None:
    """CPUs allowed by a cgroup v2 or v1 quota, or None when unlimited or unknown."""
    v2 = Path("/sys/fs/cgroup/cpu.max")
    try:
        if v2.is_file():
            quota, period = v2.read_text().split()[:2]
            if quota != "max":
                return int(quota) / int(period)
            return None
        q1, p1 = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")
        if q1.is_file() and p1.is_file():
            quota_us = int(q1.read_text())
            if quota_us > 0:
                return quota_us / int(p1.read_text())
    except (OSError, ValueError):
        return None
    return None


@functools.lru_cache(maxsize=1)
def usable_cpus() -> int:
    """CPUs this process may use: affinity mask, capped by a container CPU quota (never the host's count)."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        count = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    if quota is not None:
        count = min(count, max(1, math.ceil(quota)))
    return max(1, count)


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """Instruction-set flags from /proc/cpuinfo (empty where unavailable)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


@functools.lru_cache(maxsize=1)
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _is_arm64(machine: str | None = None) -> bool:
    return (machine or platform.machine()).lower() in ("aarch64", "arm64")


def int8_isa(flags: frozenset[str] | None = None, machine: str | None = None) -> str:
    """The int8 instruction set to quantize for: 'avx512_vnni', 'avx_vnni', 'avx2', 'arm64' or 'generic'
    (``flags`` / ``machine`` default to this CPU's; tests pass others)."""
    flags = cpu_flags() if flags is None else flags
    if "avx512_vnni" in flags:
        return "avx512_vnni"
    if "avx_vnni" in flags:
        return "avx_vnni"
    if "avx2" in flags:
        return "avx2"
    if _is_arm64(machine):
        return "arm64"
    return "generic"


def int8_settings(flags: frozenset[str] | None = None, machine: str | None = None) -> dict:
    """The int8 quantization settings this CPU needs, decided here only (ORT reduce_range, NNCF overflow_fix).

    x86 without VNNI multiplies u8 x s8 pairs with (v)pmaddubsw, which adds two products into a saturating int16:
    large activations times large weights clip. ONNX Runtime's ``reduce_range`` (7-bit weights) and NNCF's
    ``overflow_fix`` (half the weight range; ``first_layer_only`` is NNCF's advice for AVX2 / AVX-512 CPUs, ``enable``
    costs more accuracy) avoid that. VNNI (vpdpbusd) accumulates in int32: neither is needed. ARM64 int8 kernels
    (SDOT/UDOT with the ``asimddp`` feature, else widening multiply-accumulate) accumulate in 32 bits, so ARM64
    does not saturate either: no ``reduce_range`` and no overflow fix.
    """
    flags = cpu_flags() if flags is None else flags
    isa = int8_isa(flags, machine)
    if isa in ("avx512_vnni", "avx_vnni") or "amx_int8" in flags:
        why = f"{isa}: int8 dot products accumulate in int32, no saturation"
        return {"isa": isa, "reduce_range": False, "overflow_fix": "disable", "reason": why}
    if isa == "arm64":
        dot = "SDOT/UDOT (asimddp)" if "asimddp" in flags else "widening multiply-accumulate (no asimddp)"
        return {"isa": isa, "reduce_range": False, "overflow_fix": "disable",
                "reason": f"arm64: {dot} accumulates in 32 bits, no saturation"}
    return {"isa": isa, "reduce_range": True, "overflow_fix": "first_layer_only",
            "reason": f"{isa}: no VNNI, u8 x s8 pairs add into a saturating int16 (pmaddubsw): 7-bit weights"}
