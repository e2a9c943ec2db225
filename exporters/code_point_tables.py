"""Per-code-point tables of a tokenizer's normalizer and pre-tokenizer, computed by running `tokenizers` itself on
every Unicode code point, and what text-in graphs build from them.

The ONNX tokenizer (``onnx_tokenizer``) turns them into regex passes and a character map. For OpenVINO,
``openvino_exact_tree`` rewrites a WordPiece tokenizer.json so that openvino-tokenizers converts it exactly: its own
BertNormalizer and BertPreTokenizer conversions case-fold (Greek final sigma), keep private-use characters and use
other Unicode tables, so the normalizer becomes a character map (sentencepiece's precompiled format, which
openvino-tokenizers converts to its CharsMapNormalization) and the pre-tokenizer two regex splits on the very
whitespace and punctuation classes `tokenizers` uses. The reference stays the bundle's own tokenizer.json; the id
check decides.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

__all__ = ["CHAR_LOCAL_NORMALIZERS", "MAX_CODE_POINT", "char_class", "code_point_tables", "normalizer_members", "openvino_exact_tree",
           "ranges"]

MAX_CODE_POINT = 0x10FFFF
CHAR_LOCAL_NORMALIZERS = {"BertNormalizer", "Lowercase", "StripAccents", "NFD", "NFKD"}


def ranges(code_points: Sequence[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for cp in sorted(code_points):
        if out and cp == out[-1][1] + 1:
            out[-1] = (out[-1][0], cp)
        else:
            out.append((cp, cp))
    return out


def char_class(code_points: Sequence[int]) -> str:
    """An RE2 character class of exactly these code points."""
    parts = [f"\\x{{{a:x}}}" if a == b else f"\\x{{{a:x}}}-\\x{{{b:x}}}" for a, b in ranges(code_points)]
    return "[" + "".join(parts) + "]"


@lru_cache(maxsize=4)
def code_point_tables(normalizer_json: str, pre_tokenizer_json: str) -> dict[str, Any]:
    """What the normalizer makes of each code point (removed, a space, padded with spaces, another string) and
    which code points the pre-tokenizer treats as whitespace and as punctuation: `tokenizers` run on each one."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(json.dumps({
        "version": "1.0", "added_tokens": [], "normalizer": json.loads(normalizer_json),
        "pre_tokenizer": json.loads(pre_tokenizer_json), "post_processor": None, "decoder": None,
        "model": {"type": "WordLevel", "vocab": {"[UNK]": 0}, "unk_token": "[UNK]"}}))
    norm, pre = tok.normalizer, tok.pre_tokenizer
    remove, space, pad, mapping = [], [], [], {}
    chars = [chr(cp) for cp in range(MAX_CODE_POINT + 1) if not 0xD800 <= cp <= 0xDFFF]
    for c in chars:
        out = norm.normalize_str(c) if norm is not None else c
        if out == c:
            continue
        if out == "":
            remove.append(ord(c))
        elif out == " ":
            space.append(ord(c))
        elif out == f" {c} ":
            pad.append(ord(c))
        else:
            mapping[c] = out
    whitespace, punct = [], []
    for start in range(0, len(chars), 4096):  # "a" between the characters: each one is in a word, a piece, or a gap
        block = chars[start:start + 4096]
        spans = [span for _, span in pre.pre_tokenize_str("a" + "a".join(block) + "a")]
        covered = np.zeros(2 * len(block) + 1, dtype=bool)
        alone = set()
        for begin, end in spans:
            covered[begin:end] = True
            if end == begin + 1 and begin % 2 == 1:
                alone.add(begin)
        for i, c in enumerate(block):
            at = 1 + 2 * i
            if at in alone:
                punct.append(ord(c))
            elif not covered[at]:
                whitespace.append(ord(c))
    return {"remove": remove, "space": space, "pad": pad, "map": mapping,
            "whitespace": whitespace, "punct": punct}


def normalizer_members(tree: dict[str, Any]) -> list[dict[str, Any]]:
    """The normalizer steps of a tokenizer.json: the members of a Sequence, the normalizer itself, or none."""
    norm = tree.get("normalizer") or {}
    return list(norm.get("normalizers") or []) if norm.get("type") == "Sequence" else [norm] if norm else []


def _char_local(tree: dict[str, Any]) -> bool:
    return all(m.get("type") in CHAR_LOCAL_NORMALIZERS for m in normalizer_members(tree))


def _charsmap(tables: dict[str, Any]) -> bytes:
    """sentencepiece's precompiled character map of the normalizer table (NUL aside: the map cannot hold it)."""
    import io
    import os
    import tempfile

    try:
        import sentencepiece as spm
        from sentencepiece import sentencepiece_model_pb2
    except ImportError as exc:
        from st_runtime.errors import ExportError
        raise ExportError("An exact OpenVINO text graph needs sentencepiece (to write the normalizer's character map): "
                          "pip install 'st-runtime[edge]'") from exc

    def hexes(text: str) -> str:
        return " ".join(f"{ord(c):X}" for c in text)

    rows = [f"{cp:X}\t" for cp in tables["remove"] if cp]
    rows += [f"{cp:X}\t20" for cp in tables["space"]]
    rows += [f"{cp:X}\t20 {cp:X} 20" for cp in tables["pad"]]
    rows += [f"{ord(c):X}\t{hexes(out)}" for c, out in tables["map"].items()]
    handle, rules = tempfile.mkstemp(suffix=".tsv")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write("\n".join(rows) + "\n")
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(  # a throw-away model: only its normalizer spec (the compiled map) is kept
            sentence_iterator=iter(["a b c d e f g h"] * 20), model_writer=model, vocab_size=12,
            normalization_rule_tsv=rules, add_dummy_prefix=False, remove_extra_whitespaces=False,
            hard_vocab_limit=False, minloglevel=2)
    finally:
        os.unlink(rules)
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(model.getvalue())
    return bytes(proto.normalizer_spec.precompiled_charsmap)


def openvino_exact_tree(tree: dict[str, Any]) -> dict[str, Any]:
    """``tree`` with its normalizer and pre-tokenizer rewritten as openvino-tokenizers converts exactly (WordPiece,
    BertPreTokenizer, a normalizer that maps one character at a time); any other tokenizer unchanged."""
    import base64

    if (tree.get("model") or {}).get("type") != "WordPiece" or \
            (tree.get("pre_tokenizer") or {}).get("type") != "BertPreTokenizer" or not _char_local(tree):
        return tree
    tables = code_point_tables(json.dumps(tree.get("normalizer")), json.dumps(tree.get("pre_tokenizer")))
    steps = []
    if 0 in set(tables["remove"]):
        steps.append({"type": "Replace", "pattern": {"String": "\u0000"}, "content": ""})
    steps.append({"type": "Precompiled", "precompiled_charsmap": base64.b64encode(_charsmap(tables)).decode()})
    split = [{"type": "Split", "pattern": {"Regex": char_class(tables["punct"])}, "behavior": "Isolated",
              "invert": False}]
    if tables["whitespace"]:
        split.insert(0, {"type": "Split", "pattern": {"Regex": char_class(tables["whitespace"]) + "+"},
                         "behavior": "Removed", "invert": False})
    return {**tree, "normalizer": {"type": "Sequence", "normalizers": steps},
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": split}}
