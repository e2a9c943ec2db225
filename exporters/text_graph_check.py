"""Which tokenizer components each text-in graph backend converts exactly, and the token-id check against ``tokenizers``.

A component outside a backend's list is refused before conversion, naming it (``normalizer.normalizers[1]: Nmt``);
a converted tokenizer is then run on the parity corpus and must give the very ids ``tokenizers`` gives, text by text.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Callable, Sequence

from st_runtime import corpus
from st_runtime.errors import UnsupportedModelError

from .code_point_tables import CHAR_LOCAL_NORMALIZERS

# Components openvino-tokenizers 2026.4 converts (its hf_parser); anything else is refused by name.
OPENVINO_COMPONENTS = {
    "normalizer": {"BertNormalizer", "NFC", "NFD", "NFKC", "NFKD", "Lowercase", "StripAccents", "Replace",
                   "Prepend", "Strip", "Precompiled", "Sequence"},
    "pre_tokenizer": {"BertPreTokenizer", "Whitespace", "WhitespaceSplit", "ByteLevel", "Metaspace", "Split",
                      "Punctuation", "Digits", "Sequence"},
    "model": {"WordPiece", "BPE", "Unigram"},
    "post_processor": {"TemplateProcessing", "BertProcessing", "RobertaProcessing", "ByteLevel", "Sequence"},
}
# The ONNX tokenizer (exporters/onnx_tokenizer.py): normalizers that map each character on its own, BERT's
# pre-tokenizer, WordPiece.
ONNX_COMPONENTS = {
    "normalizer": CHAR_LOCAL_NORMALIZERS | {"Sequence"},
    "pre_tokenizer": {"BertPreTokenizer"},
    "model": {"WordPiece"},
    "post_processor": {"TemplateProcessing", "BertProcessing", "RobertaProcessing"},
}
EXTRA_TEXTS = ["", " ", "🙂👍🏽 emoji, flags 🇯🇵 and ZWJ 👩‍👩‍👧", "Mixed 日本語 and Ελληνικά и русский عربي हिन्दी",
               "don't  stop!!! (really?)", "ÀÉÎÕÜ àéîõü Çç Ññ ß", "x" * 300]
# Ordinary sentences in scripts whose case and accents tokenizers treat specially (Greek final sigma, Turkish
# dotted I, Vietnamese stacked marks, kana with dakuten, Hangul, ligatures), and text with control characters.
MULTILINGUAL_TEXTS = [
    "Ο φίλος μου είναι εδώ, καλημέρα σας!", "ΣΊΣΥΦΟΣ και η πέτρα του", "Привет, как дела? Всё хорошо, ёлка.",
    "Їжак і ґанок: українська мова", "İstanbul'da büyük bir şehir; ılık hava", "Straße, Fußgänger und Öl",
    "Ça va? Élève naïve, façade cœur", "Tiếng Việt có dấu: người, được, những", "日本語のテキストです。ですが、ガギグ",
    "한국어 문장입니다. 감사합니다", "中文句子，包括標點符號。", "العربية لغة جميلة، أليس كذلك؟", "עברית: שלום עולם",
    "हिन्दी भाषा में वाक्य", "ภาษาไทยไม่มีช่องว่าง", "ﬁnance ﬂow Ǆemal ǈ ½ ² ℃ ™", "nul\x00inside and\x01controls\x7f",
    "tabs\tand\nnewlines\r\x0bvertical\x0cfeed\u2028line\u00a0nbsp\u3000ideographic",
    "zero\u200bwidth\u200djoiner\ufeffbom\u00adsoft",
]
# Code points from many blocks (letters, marks, symbols, unassigned and private-use ones), seeded: what no corpus
# of ordinary text reaches.
_FUZZ_BLOCKS = [(0x20, 0x7F), (0xA0, 0x250), (0x300, 0x370), (0x370, 0x400), (0x400, 0x530), (0x590, 0x700),
                (0x900, 0x980), (0xE00, 0xE80), (0x1100, 0x1200), (0x1E00, 0x2000), (0x2000, 0x2070),
                (0x3000, 0x3100), (0x4E00, 0x4F00), (0xAC00, 0xAD00), (0xF900, 0xFA00), (0xFE00, 0xFE70),
                (0xFF00, 0xFFF0), (0x1F300, 0x1F700), (0x10000, 0x10100), (0xE0000, 0xE0080), (0x0, 0x20),
                (0xD7B0, 0xD800), (0xE000, 0xE010), (0x100000, 0x100010)]


def fuzz_texts(n: int = 200, seed: int = 0) -> list[str]:
    """``n`` seeded strings of up to 60 code points drawn from many Unicode blocks, spaces between some."""
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        chars = []
        for _ in range(rng.randint(1, 60)):
            low, high = rng.choice(_FUZZ_BLOCKS)
            chars.append(chr(rng.randrange(low, high)))
            if rng.random() < 0.3:
                chars.append(" ")
        texts.append("".join(chars))
    return texts


def added_token_texts(tree: dict[str, Any] | None) -> list[str]:
    """The tokenizer's added tokens typed inside text (tokenizers splits them out before normalizing)."""
    contents = [t["content"] for t in (tree or {}).get("added_tokens") or [] if t.get("content")]
    out = []
    for i, content in enumerate(contents):
        other = contents[(i + 1) % len(contents)]
        out += [f"before {content} after", f"glued{content}{other}text", content, content.lower() + " " + content]
    return out


class TokenizerConversionError(UnsupportedModelError):
    """The tokenizer cannot be put inside a text-in graph exactly; the message names the component and the fix."""


def _components(tree: dict[str, Any], field: str) -> list[tuple[str, str]]:
    """(path, type) of a tokenizer.json component and of each member of a Sequence."""
    node = tree.get(field)
    if node is None:
        return []
    out = [(field, node.get("type", "?"))]
    for key in ("normalizers", "pretokenizers", "processors"):
        out += [(f"{field}.{key}[{i}]", member.get("type", "?")) for i, member in enumerate(node.get(key) or [])]
    return out


def check_components(tokenizer_json: Path | dict, backend: str) -> None:
    """Refuse a tokenizer.json whose normalizer / pre-tokenizer / model / post-processor ``backend`` cannot convert."""
    tree = json.loads(Path(tokenizer_json).read_text(encoding="utf-8")) if not isinstance(tokenizer_json, dict) \
        else tokenizer_json
    allowed = OPENVINO_COMPONENTS if backend == "openvino" else ONNX_COMPONENTS
    library = "openvino-tokenizers" if backend == "openvino" else "the ONNX tokenizer (onnxruntime-extensions operators)"
    for field, types in allowed.items():
        for path, kind in _components(tree, field):
            if kind not in types:
                raise TokenizerConversionError(
                    f"The tokenizer's {path} is {kind!r}, which {library} cannot reproduce exactly (it converts "
                    f"{field} types {sorted(types)}). No text-in graph was written for {backend}; use the bundle's "
                    "normal runtime (tokenizer outside the graph) or pick another backend with --with-tokenizer.")


def check_texts(max_seq_length: int | None, tree: dict[str, Any] | None = None) -> list[str]:
    """The parity corpus plus long, empty, emoji, multilingual, control-character and fuzzed texts (some longer
    than max_seq_length), and ``tree``'s added tokens typed in text."""
    long_words = int(min(max(1200, 1.3 * (max_seq_length or 512)), 12000))
    return (corpus.parity_texts(200, long_words=long_words) + EXTRA_TEXTS + MULTILINGUAL_TEXTS + fuzz_texts()
            + added_token_texts(tree))


def require_same_ids(texts: Sequence[str], reference: Callable[[list[str]], list[list[int]]],
                     converted: Callable[[list[str]], list[list[int]]], backend: str, component: str) -> int:
    """Every text must give the same ids; else refuse naming ``component`` and the first texts that differ."""
    bad = []
    for start in range(0, len(texts), 32):
        batch = list(texts[start:start + 32])
        for text, ref, got in zip(batch, reference(batch), converted(batch)):
            if list(ref) != list(got):
                bad.append((text, ref, got))
    if bad:
        text, ref, got = bad[0]
        at = next((i for i, (a, b) in enumerate(zip(ref, got)) if a != b), min(len(ref), len(got)))
        raise TokenizerConversionError(
            f"The {backend} tokenizer conversion is not exact: {len(bad)} of {len(texts)} check texts tokenize "
            f"differently from `tokenizers` (first: {text[:60]!r}, {len(ref)} vs {len(got)} ids, first difference "
            f"at token {at}). The component that differs is the {component}. No text-in graph was written; use the "
            "bundle's normal runtime or another backend.")
    return len(texts)
