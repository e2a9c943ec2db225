"""``st-runtime serve BUNDLE [BUNDLE ...]``: serve bundles over HTTP (OpenAI embeddings, rerank, similarity)."""

from __future__ import annotations

import argparse
import logging


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundles", nargs="+", metavar="BUNDLE",
                   help="bundle folder, or NAME=PATH; the model name is the folder name unless given")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--variant", default=None, help="graph variant for every bundle ('auto' picks the best here)")
    p.add_argument("--device", default=None, help="cpu (default), cuda or cuda:N")
    p.add_argument("--threads", type=_positive(int), default=None, help="intra-op threads per model")
    p.add_argument("--max-batch-size", type=_positive(int), default=32, help="texts per inference call")
    p.add_argument("--max-batch-tokens", type=_positive(int), default=8192,
                   help="tokens per merged call (and padded tokens per sub-batch)")
    p.add_argument("--batch-wait-ms", type=float, default=5.0,
                   help="how long the oldest waiting request may wait for others to join its batch")
    p.add_argument("--max-inputs", type=_positive(int), default=512, help="inputs per request (413 above)")
    p.add_argument("--max-input-chars", type=_positive(int), default=None, help="characters per input")
    p.add_argument("--on-long", choices=("truncate", "reject"), default="truncate",
                   help="inputs over --max-input-chars: cut to the limit, or answer 413")
    p.add_argument("--request-timeout", type=_positive(float), default=30.0, help="seconds; 504 after that")
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    p.add_argument("--access-log", action="store_true", help="log every request (off by default)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError as exc:
        raise SystemExit(f"`st-runtime serve` needs the serve extra ({exc.name} is missing): "
                         "pip install 'st-runtime[serve]'") from None
    from ..errors import InputValidationError
    from .app import ServeConfig, create_app, load_model, parse_model_arg

    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s:     %(message)s")
    config = ServeConfig(
        max_batch_size=args.max_batch_size, max_batch_tokens=args.max_batch_tokens, batch_wait_ms=args.batch_wait_ms,
        max_inputs=args.max_inputs, max_input_chars=args.max_input_chars, on_long=args.on_long,
        request_timeout=args.request_timeout,
    )
    models = {}
    for arg in args.bundles:
        name, path = parse_model_arg(arg)
        if name in models:
            raise InputValidationError(f"Two models are named {name!r}; name them with NAME=PATH.")
        models[name] = load_model(path, variant=args.variant, device=args.device, threads=args.threads)
        print(f"[serve] {name}: {models[name]!r}", flush=True)
    app = create_app(models, config)
    print(f"[serve] http://{args.host}:{args.port}  (POST /v1/embeddings, /rerank, /similarity; "
          "GET /health, /v1/models, /metrics)", flush=True)
    server = uvicorn.Server(uvicorn.Config(
        app, host=args.host, port=args.port, log_level=args.log_level, access_log=args.access_log,
        lifespan="on", timeout_graceful_shutdown=int(args.request_timeout) + 5,
    ))
    server.run()
    return 0


def register(sub) -> None:
    add_arguments(sub.add_parser("serve", help="serve bundles over HTTP: OpenAI /v1/embeddings, /rerank, /similarity"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="st-runtime serve", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    return args.func(args)
