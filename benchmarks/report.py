"""Turn harness results into a Markdown table (ratios vs the torch reference) and a throughput/accuracy chart."""

from __future__ import annotations

from pathlib import Path


def _rate(figures: dict, name: str, bs: str) -> float | None:
    try:
        return figures["throughput"][name][bs]["median"]
    except KeyError:
        return None


def _fmt_ratio(value: float | None, ref: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f} ({value / ref:.2f}x)" if ref else f"{value:.1f}"


def write_markdown(results: dict, path: Path) -> str:
    """A table per text set: throughput at each batch size (ratio vs torch), latency, load, memory, size, parity."""
    systems = {k: v for k, v in results["systems"].items() if "error" not in v}
    ref = systems.get(results.get("reference") or "", {})
    sets = ["pairs"] if results["kind"] == "cross-encoder" else ["queries", "passages"]
    batch_sizes = results["settings"]["batch_sizes"].split(",")
    m = results["machine"]
    lines = [
        f"Benchmark of `{results['model']}` on {m['cpu']} ({m['usable_cpus']} CPUs, int8 ISA {m['int8_isa']}), "
        f"{results['date']}, device {results['device']}.",
        f"{results['settings']['queries']} queries (5-15 words), {results['settings']['passages']} passages "
        f"(60-120 words); median of {results['settings']['repeats']} timed repeats after warm-up; "
        "each system in a fresh process. Ratios are against the torch reference in the same run.",
        "",
    ]
    header = ["system"] + [f"{s}/s bs={bs}" for s in sets for bs in batch_sizes] + [
        "p50 ms (bs=1)", "p95 ms", "load s", "peak RSS MB", "file MB", "max abs", "mean cos", "top-10"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for system, fig in systems.items():
        row = [system]
        for s in sets:
            for bs in batch_sizes:
                row.append(_fmt_ratio(_rate(fig, s, bs), _rate(ref, s, bs)))
        lat, ref_lat = fig["latency"]["p50_ms"], ref.get("latency", {}).get("p50_ms")
        row.append(f"{lat:.1f} ({ref_lat / lat:.2f}x lower)" if ref_lat else f"{lat:.1f}")
        row.append(f"{fig['latency']['p95_ms']:.1f}")
        row.append(f"{fig['load_s']:.2f}")
        rss, ref_rss = fig["peak_rss_mb"], ref.get("peak_rss_mb")
        row.append(f"{rss:.0f} ({rss / ref_rss:.0%})" if ref_rss else f"{rss:.0f}")
        row.append(f"{fig['file_mb']:.1f}" if "file_mb" in fig else "-")
        par = fig.get("parity", {})
        row.append(f"{par['max_abs']:.1e}" if "max_abs" in par else "-")
        row.append(f"{par['mean_cosine']:.5f}" if "mean_cosine" in par else "-")
        row.append(f"{par['top10_overlap']:.3f}" if "top10_overlap" in par else "-")
        lines.append("| " + " | ".join(row) + " |")
    lines += _batch_lines(systems, sets, batch_sizes[-1])
    failed = {k: v["error"] for k, v in results["systems"].items() if "error" in v}
    for system, error in failed.items():
        lines.append(f"\n{system} failed: {error}")
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    return text


def _batch_lines(systems: dict, sets: list[str], bs: str) -> list[str]:
    """What each system actually ran at the largest batch size (the token budget splits batches; torch does not)."""
    lines = ["", f"Batches actually run at batch_size={bs} (count, rows per batch, padded tokens):", ""]
    for system, fig in systems.items():
        parts = []
        for s in sets:
            b = fig.get("batches", {}).get(s, {}).get(bs)
            if b:
                parts.append(f"{s} {b['count']} x {b['rows_min']}-{b['rows_max']} rows, {b['padded_tokens']} tokens")
        if parts:
            lines.append(f"- {system}: " + "; ".join(parts))
    return lines if len(lines) > 3 else []


def write_chart(results: dict, path: Path) -> None:
    """Scatter of throughput (passages/s, or pairs/s, at batch 32) against top-10 overlap (or mean cosine)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    set_name = "pairs" if results["kind"] == "cross-encoder" else "passages"
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for system, figures in results["systems"].items():
        if "error" in figures:
            continue
        rate = _rate(figures, set_name, "32") or _rate(figures, set_name, results["settings"]["batch_sizes"].split(",")[-1])
        parity = figures.get("parity", {})
        accuracy = parity.get("top10_overlap", parity.get("spearman", 1.0))
        ax.scatter(rate, accuracy, s=40)
        ax.annotate(system.replace("variant:", ""), (rate, accuracy), fontsize=8, xytext=(4, 3),
                    textcoords="offset points")
    ax.set_xlabel(f"{set_name} per second (batch 32)")
    ax.set_ylabel("top-10 retrieval overlap vs torch fp32" if set_name == "passages" else "Spearman vs torch")
    ax.set_title(f"{results['model']} on {results['machine']['cpu'][:40]} ({results['date'][:10]})", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
