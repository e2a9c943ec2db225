"""Self-check: ``python -m models [names...]`` builds the named (default: all) models, loads and runs each."""

from __future__ import annotations

import argparse
import sys
import time

from . import SPECS, build, cache_root, cross_encoder_names, names

TEXTS = ["hello world", "a longer sentence about python"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"default: all of {', '.join(names())}")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in names()]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; known: {names()}")

    from sentence_transformers import CrossEncoder, SentenceTransformer  # imported before timing the first build
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    print(f"cache: {cache_root()}")
    failed = 0
    for name in args.names or names():
        start = time.perf_counter()
        try:
            path = build(name)
            built = time.perf_counter() - start
            if name in cross_encoder_names():
                model = CrossEncoder(str(path), device="cpu")
                scores = model.predict([("a", "b")])
                shown = f"scores {tuple(scores.shape)} num_labels={model.num_labels} max_len={model.max_seq_length}"
            else:
                remote = name in SPECS and SPECS[name].trust_remote_code
                model = SentenceTransformer(str(path), device="cpu", trust_remote_code=remote)
                emb = model.encode(TEXTS)
                prompts = {k: v for k, v in model.prompts.items() if v}
                shown = f"embeddings {tuple(emb.shape)} max_seq={model.max_seq_length} prompts={prompts or '-'}"
        except Exception as exc:  # report every model, fail at the end
            failed += 1
            print(f"FAIL {name:18s} {type(exc).__name__}: {exc}")
            continue
        arch = SPECS[name].arch if name in SPECS else "bert (real)"
        print(f"ok   {name:18s} {arch:10s} build {built:5.2f}s  {shown}\n     {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
