"""Which tokenizer components each text-in graph backend converts exactly, and the token-id check against ``tokenizers``.

A component outside a backend's list is refused before conversion, naming it (``normalizer.normalizers[1]: Nmt``);
a converted tokenizer is then run on the parity corpus and must give the very ids ``tokenizers`` gives, text by text.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

from st_runtime import corpus
from st_runtime.errors import UnsupportedModelError

# Components openvino-tokenizers 2026.4 converts (its hf_parser); anything else is refused by name.
OPENVINO_COMPONENTS = {
    "normalizer": {"BertNormalizer", "NFC", "NFD", "NFKC", "NFKD", "Lowercase", "StripAccents", "Replace",
                   "Prepend", "Strip", "Precompiled", "Sequence"},
    "pre_tokenizer": {"BertPreTokenizer", "Whitespace", "WhitespaceSplit", "ByteLevel", "Metaspace", "Split",
                      "Punctuation", "Digits", "Sequence"},
    "model": {"WordPiece", "BPE", "Unigram"},
    "post_processor": {"TemplateProcessing", "BertProcessing", "RobertaProcessing", "ByteLevel", "Sequence"},
}
# onnxruntime-extensions' BertTokenizer operator is one fixed pipeline: BERT's normalizer, pre-tokenizer, WordPiece.
ONNX_COMPONENTS = {
    "normalizer": {"BertNormalizer"},
    "pre_tokenizer": {"BertPreTokenizer"},
    "model": {"WordPiece"},
    "post_processor": {"TemplateProcessing", "BertProcessing"},
}
EXTRA_TEXTS = ["", " ", "🙂👍🏽 emoji, flags 🇯🇵 and ZWJ 👩‍👩‍👧", "Mixed 日本語 and Ελληνικά и русский عربي हिन्दी",
               "don't  stop!!! (really?)", "ÀÉÎÕÜ àéîõü Çç Ññ ß", "x" * 300]


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
    library = "openvino-tokenizers" if backend == "openvino" else "onnxruntime-extensions (BertTokenizer operator)"
    for field, types in allowed.items():
        for path, kind in _components(tree, field):
            if kind not in types:
                raise TokenizerConversionError(
                    f"The tokenizer's {path} is {kind!r}, which {library} cannot reproduce exactly (it converts "
                    f"{field} types {sorted(types)}). No text-in graph was written for {backend}; use the bundle's "
                    "normal runtime (tokenizer outside the graph) or pick another backend with --with-tokenizer.")


def check_texts(max_seq_length: int | None) -> list[str]:
    """The parity corpus plus long, empty, emoji and mixed-script texts (some longer than max_seq_length)."""
    long_words = int(min(max(1200, 1.3 * (max_seq_length or 512)), 12000))
    return corpus.parity_texts(200, long_words=long_words) + EXTRA_TEXTS


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
