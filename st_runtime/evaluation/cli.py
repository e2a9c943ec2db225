"""`st-runtime evaluate BUNDLE (--sts FILE | --ir QUERIES CORPUS QRELS | --rerank FILE)`: one row per variant."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from ..errors import InputValidationError, StRuntimeError

# Columns shown for IR unless --metrics says otherwise (every metric is in --json).
_IR_COLUMNS = ("accuracy@1", "recall@10", "mrr@10", "ndcg@10", "map@100")
_SPARSE_COLUMNS = ("query_active_dims", "corpus_active_dims")


def _variants(manifest, requested: str | None) -> list[str]:
    if requested and requested.strip() != "all":
        names = [v.strip() for v in requested.split(",") if v.strip()]
        unknown = [v for v in names if v not in manifest.variants]
        if unknown:
            raise InputValidationError(f"Unknown variant(s) {unknown}; this bundle has {sorted(manifest.variants)}.")
        return names
    default = manifest.default_variant
    return [default] + [name for name in manifest.variants if name != default]


def _evaluator(args: argparse.Namespace, kind: str):
    from . import data
    from .embedding_similarity import EmbeddingSimilarityEvaluator
    from .information_retrieval import InformationRetrievalEvaluator
    from .reranking import CrossEncoderRerankingEvaluator

    if kind in ("sparse-encoder", "multi-vector-encoder"):
        return _family_evaluator(args, kind)
    wanted = "cross-encoder" if args.rerank else "sentence-transformer"
    if kind != wanted:
        option = "--rerank" if args.rerank else ("--sts" if args.sts else "--ir")
        raise InputValidationError(f"{option} needs a {wanted} bundle; this bundle holds a {kind}.")
    if args.sts:
        s1, s2, scores = data.read_sts(args.sts)
        return EmbeddingSimilarityEvaluator(s1, s2, scores, batch_size=args.batch_size, write_csv=False,
                                            truncate_dim=args.truncate_dim)
    if args.ir:
        return InformationRetrievalEvaluator(*_ir_data(args), batch_size=args.batch_size, write_csv=False,
                                             truncate_dim=args.truncate_dim)
    return CrossEncoderRerankingEvaluator(data.read_rerank(args.rerank), at_k=args.at_k,
                                          batch_size=args.batch_size, write_csv=False)


def _ir_data(args: argparse.Namespace):
    from . import data

    queries, corpus, qrels = (data.read_texts(args.ir[0]), data.read_texts(args.ir[1]), data.read_qrels(args.ir[2]))
    missing = sorted({cid for cids in qrels.values() for cid in cids} - set(corpus))
    if missing:  # counted as never retrieved, as sentence-transformers does; say so
        print(f"warning: qrels name {len(missing)} corpus id(s) that are not in the corpus, e.g. {missing[:3]}; "
              "they count as relevant documents never retrieved.", file=sys.stderr)
    return queries, corpus, qrels


def _family_evaluator(args: argparse.Namespace, kind: str):
    """Sparse (dot) and multi-vector (MaxSim) bundles: information retrieval only, as ST's family evaluators."""
    from .families_retrieval import MultiVectorInformationRetrievalEvaluator, SparseInformationRetrievalEvaluator

    if not args.ir:
        raise InputValidationError(f"A {kind} bundle is evaluated with --ir QUERIES CORPUS QRELS (retrieval); "
                                   f"{'--sts' if args.sts else '--rerank'} needs a sentence-transformer "
                                   f"{'' if args.sts else 'or cross-encoder '}bundle.")
    if args.truncate_dim is not None:
        raise InputValidationError(f"--truncate-dim applies to dense bundles, not to a {kind} bundle.")
    if kind == "sparse-encoder":
        return SparseInformationRetrievalEvaluator(*_ir_data(args), batch_size=args.batch_size, write_csv=False,
                                                   max_active_dims=args.max_active_dims)
    if args.max_active_dims is not None:
        raise InputValidationError("--max-active-dims applies to sparse bundles only.")
    return MultiVectorInformationRetrievalEvaluator(*_ir_data(args), batch_size=args.batch_size, write_csv=False)


def _open_model(kind: str, bundle: str, variant: str, device: str | None, verify: bool):
    from ..model_kinds import open_model

    return open_model(bundle, variant=variant, device=device, verify=verify)


def _columns(results: dict[str, dict[str, float]], evaluator, requested: str | None) -> list[str]:
    from .information_retrieval import InformationRetrievalEvaluator

    keys = list(next(iter(results.values())))
    if requested == "all":
        return keys
    if requested:
        names = [m.strip() for m in requested.split(",") if m.strip()]
        picked = [k for k in keys if k in names or any(k.endswith("_" + n) for n in names)]
        if not picked:
            raise InputValidationError(f"None of {names} is a metric here; choose from {keys}.")
        return picked
    if isinstance(evaluator, InformationRetrievalEvaluator):  # the sparse one adds active dims and FLOPS
        return [k for k in keys if k.split("_", 1)[-1] in _IR_COLUMNS or k in _SPARSE_COLUMNS]
    return keys


def _table(results: dict[str, dict[str, float]], seconds: dict[str, float], skipped: dict[str, str],
           columns: list[str]) -> list[str]:
    width = max([len("variant")] + [len(v) for v in [*results, *skipped]])
    widths = [max(8, len(c)) for c in columns]
    lines = ["  ".join([f"{'variant':{width}s}", *(f"{c:>{w}s}" for c, w in zip(columns, widths)), "seconds"])]
    reference = next(iter(results), None)
    for variant, metrics in results.items():
        cells = [f"{metrics[c]:>{w}.4f}" for c, w in zip(columns, widths)]
        lines.append("  ".join([f"{variant:{width}s}", *cells, f"{seconds[variant]:7.2f}"]))
    if len(results) > 1:
        lines.append(f"difference to {reference}:")
        for variant, metrics in list(results.items())[1:]:
            cells = [f"{metrics[c] - results[reference][c]:>+{w}.4f}" for c, w in zip(columns, widths)]
            lines.append("  ".join([f"{variant:{width}s}", *cells]))
    for variant, reason in skipped.items():
        lines.append(f"{variant:{width}s}  skipped: {reason}")
    return lines


def run(args: argparse.Namespace) -> int:
    from ..bundle import Bundle

    bundle = Bundle.open(args.bundle, verify=True)  # every file checked once; each variant opens unverified
    manifest = bundle.manifest
    evaluator = _evaluator(args, manifest.kind)
    results: dict[str, dict[str, float]] = {}
    seconds: dict[str, float] = {}
    skipped: dict[str, str] = {}
    for variant in _variants(manifest, args.variants):
        try:
            model = _open_model(manifest.kind, args.bundle, variant, args.device, verify=False)
        except (StRuntimeError, ImportError, RuntimeError) as exc:  # backend not installed, GPU-only graph, ...
            skipped[variant] = str(exc).splitlines()[0]
            continue
        start = time.perf_counter()
        results[variant] = evaluator(model)
        seconds[variant] = time.perf_counter() - start
    if not results:
        raise InputValidationError(f"No variant of {args.bundle} could run here: {skipped}.")
    if args.json:
        print(json.dumps({"primary_metric": evaluator.primary_metric, "results": results, "seconds": seconds,
                          "skipped": skipped}, indent=2))
        return 0
    what = "STS" if args.sts else ("IR" if args.ir else "reranking")
    if manifest.kind in ("sparse-encoder", "multi-vector-encoder"):
        what = f"{manifest.kind} IR"
    print(f"{what} evaluation of {bundle.root} (primary metric: {evaluator.primary_metric})")
    for line in _table(results, seconds, skipped, _columns(results, evaluator, args.metrics)):
        print(line)
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "evaluate", help="score every variant of a bundle on your own dev data (STS, retrieval or reranking)",
        description="Run sentence-transformers' evaluators (same metric names and values) torch-free on each "
                    "variant of a bundle, so you see what e.g. int8 costs on your data. STS file: TSV / CSV / "
                    "JSONL with sentence1, sentence2, score (scores above 1 are divided by 5, or by the largest "
                    "score; correlations do not change). IR: queries and corpus as JSONL (_id, text[, title]) or "
                    "TSV id<TAB>text, qrels as JSONL or TSV qid<TAB>cid[<TAB>score]. Rerank: JSONL of {query, "
                    "positive: [...], negative: [...]} or {query, positive, documents}.")
    p.add_argument("bundle")
    task = p.add_mutually_exclusive_group(required=True)
    task.add_argument("--sts", metavar="FILE", help="scored sentence pairs (Pearson / Spearman)")
    task.add_argument("--ir", nargs=3, metavar=("QUERIES", "CORPUS", "QRELS"), help="retrieval (MRR, NDCG, ...)")
    task.add_argument("--rerank", metavar="FILE", help="reranking samples for a cross-encoder bundle")
    p.add_argument("--variants", default=None, help="comma list of variants (default: every variant, default first)")
    p.add_argument("--metrics", default=None, help="comma list of metrics to show, or 'all' "
                                                   f"(IR default: {', '.join(_IR_COLUMNS)})")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--truncate-dim", type=int, default=None, help="bi-encoders: evaluate truncated embeddings")
    p.add_argument("--max-active-dims", type=int, default=None,
                   help="sparse bundles: keep this many largest dimensions of queries and documents")
    p.add_argument("--at-k", type=int, default=10, help="rerank: cut-off for MRR and NDCG (default 10)")
    p.add_argument("--device", default=None, help="cpu (default), cuda, cuda:N")
    p.add_argument("--json", action="store_true", help="print every metric of every variant as JSON")
    p.set_defaults(func=run)
