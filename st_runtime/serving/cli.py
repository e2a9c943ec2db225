"""``st-runtime serve BUNDLE [BUNDLE ...]``: serve bundles over HTTP (OpenAI, TEI and Cohere shapes)."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from ..auto_policy_args import add_auto_policy_arguments, auto_policy_kwargs

API_KEY_ENV = "ST_RUNTIME_API_KEY"


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundles", nargs="+", metavar="BUNDLE",
                   help="bundle folder, or NAME=PATH; the model name is the folder name unless given")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--variant", default=None, help="graph variant for every bundle ('auto' picks the best here)")
    p.add_argument("--device", default=None, help="cpu (default), cuda or cuda:N")
    p.add_argument("--threads", type=_positive(int), default=None, help="intra-op threads per model")
    add_auto_policy_arguments(p)
    g = p.add_argument_group("batching")
    g.add_argument("--max-batch-size", type=_positive(int), default=32, help="texts per inference call")
    g.add_argument("--max-batch-tokens", type=_positive(int), default=8192,
                   help="tokens per merged call; each graph call stays within this and the model's own "
                        "budget (max_batch_tokens of its configuration: 1024 unless the variant records another)")
    g.add_argument("--batch-wait-ms", type=float, default=5.0,
                   help="how long the oldest waiting request may wait for others to join its batch")
    from ..long_text import add_cli_options

    add_cli_options(p.add_argument_group("long texts (embedding models)"))
    p.add_argument("--task", action="append", default=[], metavar="[NAME=]TASK",
                   help="dense Router models: the route every request takes ('query', 'document' or a route name; "
                        "default: the Router's default route), held in the model's configuration; NAME=TASK for "
                        "one model only (repeatable, e.g. q=BUNDLE d=BUNDLE --task q=query --task d=document)")
    g = p.add_argument_group("request limits")
    g.add_argument("--max-inputs", type=_positive(int), default=512, help="inputs per request (413 above)")
    g.add_argument("--max-input-chars", type=_positive(int), default=None, help="characters per input")
    g.add_argument("--on-long", choices=("truncate", "reject"), default="truncate",
                   help="inputs over --max-input-chars: cut to the limit, or answer 413")
    g.add_argument("--auto-truncate", action="store_true",
                   help="cut inputs over the model's max_seq_length (as sentence-transformers does) instead of "
                        "answering 413; a request's \"truncate\" field overrides it")
    g.add_argument("--max-body-bytes", type=_positive(int), default=4 * 1024 * 1024,
                   help="request body size (413 above, checked before parsing)")
    g.add_argument("--body-timeout", type=_positive(float), default=10.0,
                   help="seconds for the whole body to arrive (408 after that)")
    g.add_argument("--request-timeout", type=_positive(float), default=30.0, help="seconds; 504 after that")
    g = p.add_argument_group("backpressure (429 with Retry-After beyond these)")
    g.add_argument("--max-concurrent-requests", type=_positive(int), default=512,
                   help="inference requests served at once (tokenizing, queued or running)")
    g.add_argument("--max-queue-requests", type=_positive(int), default=None,
                   help="requests queued or running per model (default: --max-concurrent-requests)")
    g.add_argument("--max-queue-tokens", type=_positive(int), default=262144,
                   help="tokens queued or running per model")
    g.add_argument("--max-buffered-bytes", type=_positive(int), default=256 * 1024 * 1024,
                   help="request body bytes held at once, all requests together (bounds memory under floods)")
    g.add_argument("--retry-after", type=_positive(int), default=1, help="seconds in the Retry-After header")
    g = p.add_argument_group("security")
    g.add_argument("--api-key", action="append", default=[], metavar="KEY",
                   help=f"accept 'Authorization: Bearer KEY' (repeatable; also --api-key-file and ${API_KEY_ENV})")
    g.add_argument("--api-key-file", type=Path, default=None,
                   help="file with one API key per line ('#' comments and blank lines ignored)")
    g.add_argument("--protect-metrics", action="store_true", help="require the API key on /metrics too")
    g = p.add_argument_group("lifecycle")
    g.add_argument("--no-warmup", dest="warmup", action="store_false",
                   help="report ready at once instead of after one warm-up call per model")
    g.add_argument("--drain-grace", type=_non_negative, default=0.0,
                   help="after SIGTERM, keep answering /health 503 at least this many seconds")
    g.add_argument("--drain-timeout", type=_positive(float), default=None,
                   help="after SIGTERM, wait at most this long for in-flight requests (default request timeout + 5)")
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    p.add_argument("--access-log", action="store_true", help="one JSON line per request (st_runtime.serving.access)")
    p.set_defaults(func=run)


def api_keys(args: argparse.Namespace) -> tuple[str, ...]:
    """Keys from --api-key, --api-key-file and $ST_RUNTIME_API_KEY (in that order, duplicates dropped)."""
    from ..errors import InputValidationError

    keys = [k.strip() for k in args.api_key]
    if args.api_key_file is not None:
        try:
            lines = Path(args.api_key_file).expanduser().read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise InputValidationError(f"Cannot read --api-key-file {str(args.api_key_file)!r}: "
                                       f"{exc.strerror}.") from None
        keys += [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
        if not keys:
            raise InputValidationError(f"--api-key-file {str(args.api_key_file)!r} holds no key.")
    env = os.environ.get(API_KEY_ENV, "").strip()
    if env:
        keys.append(env)
    if any(not k for k in keys):
        raise InputValidationError("An --api-key is empty.")
    return tuple(dict.fromkeys(keys))


def build_config(args: argparse.Namespace):
    from .config import ServeConfig

    return ServeConfig(
        max_batch_size=args.max_batch_size, max_batch_tokens=args.max_batch_tokens, batch_wait_ms=args.batch_wait_ms,
        max_inputs=args.max_inputs, max_input_chars=args.max_input_chars, on_long=args.on_long,
        request_timeout=args.request_timeout, auto_truncate=args.auto_truncate, max_body_bytes=args.max_body_bytes,
        max_buffered_bytes=args.max_buffered_bytes,
        body_timeout=args.body_timeout, max_concurrent_requests=args.max_concurrent_requests,
        max_queue_requests=args.max_queue_requests, max_queue_tokens=args.max_queue_tokens,
        retry_after=args.retry_after, api_keys=api_keys(args), protect_metrics=args.protect_metrics,
        warmup=args.warmup, drain_grace=args.drain_grace, drain_timeout=args.drain_timeout,
        access_log=args.access_log,
    )


def _task_for(name: str, tasks: list[str]) -> str | None:
    """The --task a model takes: its own NAME=TASK, else a plain TASK, else None."""
    own = [t.split("=", 1)[1] for t in tasks if "=" in t and t.split("=", 1)[0] == name]
    plain = [t for t in tasks if "=" not in t]
    return (own or plain or [None])[-1]


def load_models(args: argparse.Namespace) -> dict:
    """Name -> opened model for each BUNDLE argument, with the server-wide --long-text setting applied."""
    from ..errors import InputValidationError
    from .app import load_model, parse_model_arg

    models = {}
    for arg in args.bundles:
        name, path = parse_model_arg(arg)
        if name in models:
            raise InputValidationError(f"Two models are named {name!r}; name them with NAME=PATH.")
        models[name] = load_model(path, variant=args.variant, device=args.device, threads=args.threads,
                                  **auto_policy_kwargs(args))
        if args.long_text != "truncate" or args.chunk_stride is not None:
            if not hasattr(models[name], "set_long_text"):
                raise InputValidationError(f"--long-text applies to dense embedding models; {name!r} is a "
                                           f"{type(models[name]).__name__}: serve it from another server.")
            models[name].set_long_text(args.long_text, args.chunk_stride, args.chunk_pooling)
        task = _task_for(name, getattr(args, "task", None) or [])
        if task is not None:
            if not hasattr(models[name], "set_task"):
                raise InputValidationError(f"--task picks a dense Router model's route; {name!r} is a "
                                           f"{type(models[name]).__name__}: send \"task\" with each request.")
            models[name].set_task(task)
        print(f"[serve] {name}: {models[name]!r}", flush=True)
    return models


def run(args: argparse.Namespace) -> int:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise SystemExit(f"`st-runtime serve` needs the serve extra ({exc.name} is missing): "
                         "pip install 'st-runtime[serve]'") from None
    from .app import create_app
    from .server import serve

    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s:     %(message)s")
    config = build_config(args)
    models = load_models(args)
    app = create_app(models, config)
    auth = f"{len(config.api_keys)} API key(s)" if config.api_keys else "no API key (anyone who reaches the port)"
    print(f"[serve] http://{args.host}:{args.port}  (POST /v1/embeddings, /embed, /rerank, /similarity, /tokenize; "
          f"GET /health, /v1/models, /metrics); {auth}", flush=True)
    serve(app, args.host, args.port, log_level=args.log_level)
    return 0


def register(sub) -> None:
    add_arguments(sub.add_parser("serve", help="serve bundles over HTTP: OpenAI /v1/embeddings, TEI, Cohere rerank"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="st-runtime serve", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    return args.func(args)
