"""`st-runtime bench` / `python -m benchmarks`: the harness on the command line."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle")
    p.add_argument("--out", default="benchmarks/results/latest", help="folder for results.json/.md and the chart")
    p.add_argument("--variants", help="comma list (default: every variant in the bundle)")
    p.add_argument("--no-torch", action="store_true", help="skip the sentence-transformers torch reference")
    p.add_argument("--no-torch-bf16", action="store_true",
                   help="skip the torch-bf16 row (ST with model_kwargs={'torch_dtype': torch.bfloat16}; slow on CPUs "
                        "without AVX512-BF16/AMX)")
    p.add_argument("--st-backends", default="",
                   help="also run ST's own backends, e.g. onnx,openvino or onnx:onnx/model_qint8_avx512_vnni.onnx "
                        "(BACKEND[:FILE] in the --source folder; needs them installed)")
    p.add_argument("--source", help="model folder for the torch and ST systems (default: the bundle's source)")
    p.add_argument("--st-python", help="python of a venv with ST's backends (for --st-backends)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--queries", type=int, default=256)
    p.add_argument("--passages", type=int, default=128)
    p.add_argument("--batch-sizes", default="1,8,32,128")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--corpus", help="text file, one text per line (<=20 words: query, else passage)")
    p.add_argument("--quick", action="store_true", help="tiny run for smoke tests (16 texts, batch 1 and 8, 1 repeat)")
    p.add_argument("--rank", action="store_true",
                   help="only measure every variant this machine runs (batch 32, real text) and store the speeds "
                        "in the user cache, where variant='auto' ranks by them on this machine")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.rank:
        return _rank(args)
    from .harness import run_benchmark

    if args.quick:
        args.queries, args.passages, args.batch_sizes, args.repeats = 16, 16, "1,8", 1
    variants = [v for v in args.variants.split(",") if v] if args.variants else None
    results = run_benchmark(
        args.bundle, args.out, variants=variants, torch_reference=not args.no_torch,
        st_backends=[b for b in args.st_backends.split(",") if b], device=args.device, n_queries=args.queries,
        n_passages=args.passages, batch_sizes=args.batch_sizes, repeats=args.repeats, corpus_file=args.corpus, st_python=args.st_python,
        source=args.source, torch_bf16=not args.no_torch_bf16,
    )
    print((__import__("pathlib").Path(args.out) / "results.md").read_text())
    failed = [k for k, v in results["systems"].items() if "error" in v]
    return 1 if failed else 0


def _rank(args: argparse.Namespace) -> int:
    from st_runtime.hardware import cpu_name
    from st_runtime.speed_measure import measure_and_store
    from st_runtime.speed_ranking import ranking_path

    variants = [v for v in args.variants.split(",") if v] if args.variants else None
    data = measure_and_store(args.bundle, variants, repeats=args.repeats,
                             progress=lambda msg: print(f"[rank] {msg}", flush=True))
    fastest = max(data["texts_per_s"], key=data["texts_per_s"].get)
    print(f"[rank] fastest here ({cpu_name()}): {fastest}; stored in {ranking_path(args.bundle)}")
    return 0


def register(sub) -> None:
    add_arguments(sub.add_parser("bench", help="benchmark the torch reference and every variant side by side"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    return args.func(args)
