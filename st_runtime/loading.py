"""Build a GraphRunner from a bundle: tokenizer + the chosen variant's backend session."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from .backends import is_installed, open_session
from .bundle import Bundle
from .engine import GraphRunner
from .errors import BackendUnavailableError
from .hardware import cpu_flags, int8_isa
from .manifest import Manifest, TokenizerSpec, VariantSpec
from .speed_ranking import load_ranking
from .tokenization import TextTokenizer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AutoPolicy:
    """What ``variant="auto"`` may pick: gate-passing, unforced variants; batch-dependent ones only when allowed;
    optional floors on the recorded task retention (variant NDCG@10 / fp32's) and top-10 overlap."""

    allow_batch_dependent: bool = False
    min_retention: float | None = None
    min_top10: float | None = None


@dataclass
class AutoChoice:
    """The variant ``auto`` picks, its figures, and why every other variant was passed over."""

    name: str
    figures: dict[str, float]
    skipped: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        shown = ", ".join(f"{k} {v:.4g}" for k, v in self.figures.items())
        out = f"{self.name} ({shown})"
        if self.skipped:
            out += "; passed over: " + "; ".join(f"{n}: {why}" for n, why in self.skipped.items())
        return out


def quality_of(manifest: Manifest, name: str) -> dict[str, float]:
    """Task retention and top-10 overlap of a variant; the exported fp32 graph is the reference itself (1.0)."""
    spec = manifest.variants[name]
    acc = spec.accuracy
    if name == manifest.default_variant and "passed" not in acc:
        return {"retention": 1.0, "top10_overlap": 1.0}
    out = {}
    kept = [acc[k] for k in ("ndcg10_retention", "user_retention") if isinstance(acc.get(k), (int, float))]
    if kept:
        out["retention"] = float(min(kept))
    if isinstance(acc.get("top10_overlap"), (int, float)):
        out["top10_overlap"] = float(acc["top10_overlap"])
    return out


def _runnable(spec: VariantSpec, on_gpu: bool, isa: str) -> str | None:
    """None when this machine can run ``spec`` at its speed, else why not."""
    if not is_installed(spec.format):
        return f"{spec.format} is not installed"
    if spec.settings.get("static_shapes"):
        return "static shapes are for NPUs and fixed-shape runtimes (pass variant=NAME to use them)"
    if spec.target == "gpu" and not on_gpu:
        return "GPU variant"
    if spec.precision == "fp16" and not on_gpu:
        return "fp16 is for GPUs"
    if spec.precision == "int8" and on_gpu:
        return "int8 is for CPUs"
    isas = spec.settings.get("isa")
    isas = isas if isinstance(isas, list) else [isas] if isas else []
    if spec.precision == "bf16":  # without bf16 units it would run in f32: no faster than the fp32 graph
        return None if not on_gpu and cpu_flags() & set(isas) else "this CPU has no bf16 units"
    if spec.precision == "int8" and isas and isa not in isas:
        return f"built for {'/'.join(map(str, isas))}, this CPU's int8 ISA is {isa}"
    return None


def runnable_reason(manifest: Manifest, name: str, device: str | None = None) -> str | None:
    """None when this machine can run variant ``name`` at its speed, else why not."""
    return _runnable(manifest.variants[name], (device or "cpu").startswith("cuda"), int8_isa())


def _quality_reason(manifest: Manifest, name: str, policy: AutoPolicy) -> str | None:
    spec = manifest.variants[name]
    if spec.settings.get("forced"):
        return "written with --force after missing its gate"
    if name != manifest.default_variant and spec.accuracy.get("passed") is not True:
        return "did not pass its accuracy gate"
    if spec.settings.get("deterministic") is False and not policy.allow_batch_dependent:
        return "its vectors depend on the other texts in the batch (allow_batch_dependent=True allows it)"
    quality = quality_of(manifest, name)
    for floor, key, label in ((policy.min_retention, "retention", "min_retention"),
                              (policy.min_top10, "top10_overlap", "min_top10")):
        if floor is not None and not quality.get(key, float("nan")) >= floor:
            value = quality.get(key)
            return f"{key} {value:.4g} < {label}={floor:g}" if value is not None else f"no {key} recorded"
    return None


def auto_choice(manifest: Manifest, device: str | None, policy: AutoPolicy = AutoPolicy(),
                measured: dict[str, float] | None = None) -> AutoChoice:
    """The variant ``auto`` picks on this machine under ``policy``: among runnable variants that passed their gate
    (not forced, batch-independent unless allowed, above the floors), the fastest for this CPU: by ``measured``
    texts/s when every candidate was measured here (``st-runtime bench BUNDLE --rank``, see ``speed_ranking``), else
    by the highest ``auto_rank``, recorded by the exporter from what each kind of graph gains on the CPU it was
    built for."""
    on_gpu = (device or "cpu").startswith("cuda")
    isa = int8_isa()
    skipped: dict[str, str] = {}
    candidates = []
    for name, spec in manifest.variants.items():
        reason = _runnable(spec, on_gpu, isa) or _quality_reason(manifest, name, policy)
        if reason:
            skipped[name] = reason
        else:
            candidates.append(name)
    if not candidates:
        raise BackendUnavailableError(
            f"No variant of this bundle can run here under variant='auto' (device={device!r}, int8 ISA {isa}, "
            f"{policy}): " + "; ".join(f"{n}: {why}" for n, why in skipped.items())
            + ". Relax the floors, install onnxruntime or openvino, or pass variant=NAME."
        )
    if measured and not on_gpu and all(name in measured for name in candidates):
        candidates.sort(key=lambda name: -float(measured[name]))
        best = candidates[0]
        for name in candidates[1:]:
            skipped[name] = f"slower here than {best} (measured {measured[name]:.4g} vs {measured[best]:.4g} texts/s)"
        return AutoChoice(best, {**quality_of(manifest, best), "texts_per_s": float(measured[best])}, skipped)
    candidates.sort(key=lambda name: -float(manifest.variants[name].settings.get("auto_rank", 0)))
    best = candidates[0]
    for name in candidates[1:]:
        skipped[name] = f"slower here than {best} (auto_rank)"
    return AutoChoice(best, quality_of(manifest, best), skipped)


def choose_variant(bundle: Bundle, variant: str | None, device: str | None,
                   policy: AutoPolicy | None = None) -> str:
    """Resolve ``variant`` ('auto', None or a name) to a variant this machine can run."""
    if variant != "auto":
        return bundle.variant(variant)[0]
    ranking = load_ranking(bundle.root) if getattr(bundle, "root", None) else None
    choice = auto_choice(bundle.manifest, device, policy or AutoPolicy(), ranking and ranking["texts_per_s"])
    logger.info("variant='auto' chose %s (device=%s, int8 ISA %s)", choice.describe(), device or "cpu", int8_isa())
    return choice.name


def _tokenizer_spec(manifest: Manifest, spec: VariantSpec) -> TokenizerSpec:
    """The bundle's tokenizer settings; a static-shape variant also caps lengths at its longest bucket, so a longer
    text is truncated there (the exporter requires that bucket to cover max_seq_length)."""
    shapes = spec.settings.get("static_shapes")
    if not shapes:
        return manifest.tokenizer
    longest = max(int(entry["length"]) for entry in shapes)
    current = manifest.tokenizer
    return replace(current, model_max_length=min(current.model_max_length or longest, longest),
                   max_seq_length=min(current.max_seq_length or longest, longest))


def build_runner(bundle: Bundle, variant: str | None, device: str | None, threads: int | None,
                 policy: AutoPolicy | None = None) -> tuple[str, GraphRunner]:
    """The (variant name, runner) for a verified bundle; ``policy`` constrains ``variant='auto'``."""
    name = choose_variant(bundle, variant, device, policy)
    weights = bundle.weight_files(name)
    # Graph and tokenizer are hashed before anything parses them. The weight files hold raw tensor bytes whose
    # offsets come from the verified graph, so they are hashed on a second core while the runtime maps them;
    # a mismatch still raises before the model is returned.
    bundle.check_hashes([rel for rel in bundle.files_of(name) if rel not in weights])
    spec = bundle.manifest.variants[name]
    tokenizer = TextTokenizer.from_file(bundle.path_of(bundle.manifest.tokenizer.file),
                                        _tokenizer_spec(bundle.manifest, spec))
    with ThreadPoolExecutor(max_workers=1) as pool:
        hashing = pool.submit(bundle.check_hashes, weights)
        try:
            graph_hashes = [bundle.manifest.files[rel]["sha256"] for rel in (spec.file, spec.weights_file)
                            if rel and "sha256" in bundle.manifest.files.get(rel, {})]
            session = open_session(bundle.path_of(spec.file), spec.format, device=device, threads=threads,
                                   settings=spec.settings, graph_hashes=graph_hashes)
        except Exception:
            hashing.result()  # damaged weights explain a failed load better than the runtime's message
            raise
        hashing.result()
    return name, GraphRunner(tokenizer, session)


def build_route_runners(bundle: Bundle, variant: str, device: str | None,
                        threads: int | None) -> dict[str, GraphRunner]:
    """A runner per Router route that has graphs of its own, each opening its graph of ``variant`` (the variant the
    bundle's main graph runs) with its own tokenizer; empty for a single-path bundle."""
    runners = {}
    for name, route in bundle.manifest.graph_routes().items():
        spec = route.variants.get(variant)
        if spec is None:
            raise BackendUnavailableError(f"Route {name!r} of this bundle has no {variant!r} graph (it has "
                                          f"{sorted(route.variants)}); pass variant= one of those.")
        bundle.check_hashes([rel for rel in route.files() if rel in (route.tokenizer_file, spec.file,
                                                                     spec.weights_file)])
        tokenizer = TextTokenizer.from_file(bundle.path_of(route.tokenizer_file), route.tokenizer)
        graph_hashes = [bundle.manifest.files[rel]["sha256"] for rel in (spec.file, spec.weights_file)
                        if rel and "sha256" in bundle.manifest.files.get(rel, {})]
        session = open_session(bundle.path_of(spec.file), spec.format, device=device, threads=threads,
                               settings=spec.settings, graph_hashes=graph_hashes)
        runners[name] = GraphRunner(tokenizer, session)
    return runners
