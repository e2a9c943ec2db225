"""The command-line flags that constrain ``--variant auto``, shared by every command that opens a bundle.

``serve``, ``embed``, ``encode`` and ``info`` take the same three flags and turn them into the same
``AutoPolicy`` the Python API takes (``SentenceTransformer(path, variant="auto", min_retention=...)``), so a
server, a corpus job and a script pick the same variant on the same machine.
"""

from __future__ import annotations

import argparse

from .loading import AutoPolicy

__all__ = ["add_auto_policy_arguments", "auto_policy_kwargs", "auto_policy"]


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a fraction between 0 and 1, got {text}")
    return value


def add_auto_policy_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``--allow-batch-dependent``, ``--min-retention`` and ``--min-top10`` (read only by ``--variant auto``)."""
    g = p.add_argument_group("variant auto (which variants it may pick)")
    g.add_argument("--allow-batch-dependent", action="store_true",
                   help="let auto pick a variant whose vectors depend on the other texts in the batch "
                        "(onnx-int8-dynamic); off by default")
    g.add_argument("--min-retention", type=_fraction, default=None, metavar="FRACTION",
                   help="auto picks only variants whose recorded NDCG@10 retention (variant / torch fp32) is >= this")
    g.add_argument("--min-top10", type=_fraction, default=None, metavar="FRACTION",
                   help="auto picks only variants whose recorded top-10 overlap with fp32 is >= this")


def auto_policy_kwargs(args: argparse.Namespace) -> dict:
    """The model constructors' keyword arguments for the parsed flags."""
    return {"allow_batch_dependent": bool(getattr(args, "allow_batch_dependent", False)),
            "min_retention": getattr(args, "min_retention", None),
            "min_top10": getattr(args, "min_top10", None)}


def auto_policy(args: argparse.Namespace) -> AutoPolicy:
    """The ``AutoPolicy`` for the parsed flags."""
    return AutoPolicy(**auto_policy_kwargs(args))
