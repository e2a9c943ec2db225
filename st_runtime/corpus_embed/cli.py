"""`st-runtime embed BUNDLE INPUT OUTPUT`: embed a corpus file, locally or on Ray."""

from __future__ import annotations

import argparse

from ..auto_policy_args import add_auto_policy_arguments, auto_policy_kwargs
from ..long_text import add_cli_options


def run(args: argparse.Namespace) -> int:
    kwargs = {"prompt_name": args.prompt_name, "truncate_dim": args.truncate_dim,
              "normalize_embeddings": args.normalize, "precision": args.precision}
    long_text = {"long_text": args.long_text, "chunk_stride": args.chunk_stride, "chunk_pooling": args.chunk_pooling}
    if args.ray or args.ray_address:
        from ..model_kinds import open_model
        from .ray_job import embed_file_ray

        variant = args.variant
        if variant == "auto":  # chosen once here, so every worker runs the same variant under the same rule
            variant = open_model(args.bundle, variant="auto", **auto_policy_kwargs(args)).variant
        out = embed_file_ray(args.bundle, args.input, args.output, address=args.ray_address, workers=args.workers,
                             rows_per_batch=args.chunk_size, column=args.column, variant=variant,
                             ship_bundle=args.ship_bundle, batch_size=args.batch_size,
                             calibration_embeddings=args.calibration_embeddings,
                             calibration_size=args.calibration_size, max_active_dims=args.max_active_dims,
                             task=args.task, **kwargs, **long_text)
    else:
        from ..model_kinds import open_model
        from .local import embed_file

        model = open_model(args.bundle, variant=args.variant, **auto_policy_kwargs(args))
        if hasattr(model, "set_long_text"):
            model.set_long_text(**long_text)
        elif args.long_text != "truncate":
            from ..errors import InputValidationError

            raise InputValidationError(f"--long-text {args.long_text} applies to dense bundles; this "
                                       f"{model.manifest.kind} bundle truncates at max_seq_length, as "
                                       "sentence-transformers does.")
        out = embed_file(model, args.input, args.output, chunk_size=args.chunk_size, column=args.column,
                         prompt_name=args.prompt_name, truncate_dim=args.truncate_dim, normalize=args.normalize,
                         precision=args.precision, batch_size=args.batch_size, restart=args.restart,
                         calibration_embeddings=args.calibration_embeddings, calibration_size=args.calibration_size,
                         max_active_dims=args.max_active_dims, task=args.task)
    print(f"wrote {out}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("embed", help="embed a corpus file (.txt/.jsonl/.parquet) into Parquet or .npy")
    p.add_argument("bundle")
    p.add_argument("input", help=".txt (one text per line), .jsonl or .parquet")
    p.add_argument("output", help=".parquet (id, text_hash, embedding; sparse: indices, values) or .npy (dense); "
                   "with Ray, a folder is also allowed")
    p.add_argument("--column", default="text", help="text column for .jsonl / .parquet (default: text)")
    p.add_argument("--chunk-size", type=int, default=4096, help="texts per resumable chunk (Ray: per batch)")
    p.add_argument("--batch-size", type=int, default=32, help="texts per model call")
    p.add_argument("--variant", default=None, help="graph variant ('auto' picks the best here)")
    add_auto_policy_arguments(p)
    p.add_argument("--prompt-name", default=None)
    p.add_argument("--truncate-dim", type=int, default=None)
    p.add_argument("--normalize", action="store_true")
    p.add_argument("--precision", default="float32", choices=["float32", "int8", "uint8", "binary", "ubinary"])
    p.add_argument("--calibration-embeddings", default=None, metavar="FILE",
                   help="int8/uint8: a .npy of float embeddings whose per-dimension min/max give the ranges")
    p.add_argument("--calibration-size", type=int, default=10_000,
                   help="int8/uint8: ranges from this many texts at the start of the input (default 10000)")
    p.add_argument("--task", default=None,
                   help="'query', 'document' or a Router route name: the route a Router model takes (dense or sparse), the "
                        "multi-vector side, and for query/document the prompt encode_query/encode_document use")
    p.add_argument("--max-active-dims", type=int, default=None, help="sparse: keep this many largest dimensions")
    add_cli_options(p)
    p.add_argument("--restart", action="store_true", help="discard an interrupted run instead of resuming it")
    p.add_argument("--ray", action="store_true", help="run on Ray Data (a local cluster unless --ray-address)")
    p.add_argument("--ray-address", default=None, help="address of an existing cluster, e.g. ray://head:10001 or auto")
    p.add_argument("--workers", type=int, default=1, help="Ray actors, one model each")
    p.add_argument("--ship-bundle", action="store_true",
                   help="send the bundle's files to the workers (no shared storage needed)")
    p.set_defaults(func=run)
