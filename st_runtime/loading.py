"""Build a GraphRunner from a bundle: tokenizer + the chosen variant's backend session."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from .backends import is_installed, open_session
from .bundle import Bundle
from .engine import GraphRunner
from .errors import BackendUnavailableError
from .hardware import cpu_flags, int8_isa
from .tokenization import TextTokenizer

logger = logging.getLogger(__name__)


def choose_variant(bundle: Bundle, variant: str | None, device: str | None) -> str:
    """Resolve ``variant`` ('auto', None or a name) to a variant this machine can run."""
    variants = bundle.manifest.variants
    if variant != "auto":
        return bundle.variant(variant)[0]
    on_gpu = (device or "cpu").startswith("cuda")
    isa = int8_isa()

    def runnable(spec) -> bool:
        if not is_installed(spec.format):
            return False
        if spec.target == "gpu" and not on_gpu:
            return False
        if spec.precision == "fp16" and not on_gpu:
            return False
        if spec.precision == "int8" and on_gpu:
            return False
        isas = spec.settings.get("isa")
        isas = isas if isinstance(isas, list) else [isas] if isas else []
        if spec.precision == "bf16":  # without bf16 units it would run in f32: no faster than the fp32 graph
            return not on_gpu and bool(cpu_flags() & set(isas))
        return not (spec.precision == "int8" and isas and isa not in isas)

    ranked = sorted(
        (name for name, spec in variants.items() if runnable(spec)),
        key=lambda name: -float(variants[name].settings.get("auto_rank", 0)),
    )
    if not ranked:
        raise BackendUnavailableError(
            f"No variant of this bundle can run here (device={device!r}, int8 ISA {isa}); "
            f"variants: {sorted(variants)}. Install onnxruntime or openvino, or pass variant=NAME."
        )
    logger.info("variant='auto' chose %r (device=%s, int8 ISA %s)", ranked[0], device or "cpu", isa)
    return ranked[0]


def build_runner(bundle: Bundle, variant: str | None, device: str | None, threads: int | None) -> tuple[str, GraphRunner]:
    """The (variant name, runner) for a verified bundle."""
    name = choose_variant(bundle, variant, device)
    weights = bundle.weight_files(name)
    # Graph and tokenizer are hashed before anything parses them. The weight files hold raw tensor bytes whose
    # offsets come from the verified graph, so they are hashed on a second core while the runtime maps them;
    # a mismatch still raises before the model is returned.
    bundle.check_hashes([rel for rel in bundle.files_of(name) if rel not in weights])
    spec = bundle.manifest.variants[name]
    tokenizer = TextTokenizer.from_file(bundle.path_of(bundle.manifest.tokenizer.file), bundle.manifest.tokenizer)
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
