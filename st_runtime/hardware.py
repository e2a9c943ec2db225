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


def int8_isa() -> str:
    """The int8 instruction set to quantize for: 'avx512_vnni', 'avx_vnni', 'avx2', 'arm64' or 'generic'."""
    flags = cpu_flags()
    if "avx512_vnni" in flags:
        return "avx512_vnni"
    if "avx_vnni" in flags:
        return "avx_vnni"
    if "avx2" in flags:
        return "avx2"
    if platform.machine().lower() in ("aarch64", "arm64"):
        return "arm64"
    return "generic"
