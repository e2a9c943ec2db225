"""A WordPiece tokenizer.json as ONNX operators: strings in, ``input_ids`` / ``attention_mask`` / ``token_type_ids`` out.

onnxruntime-extensions' own ``BertTokenizer`` operator is not exact (its accent stripping and lower-casing differ from
`tokenizers` on Greek, Cyrillic, Japanese; its WordPiece keeps the pieces of a word it cannot finish). So the
tokenizer is assembled from smaller operators whose behaviour is fully determined by tables computed here from the
bundle's own tokenizer, by running `tokenizers` on every code point:

1. NUL characters become another character the normalizer removes (the extensions' operators read C strings);
   the added tokens (``[CLS]``, ``[SEP]``, ...) typed in the text become one private-use sentinel character each,
   spaced off, as `tokenizers` splits them out before normalizing.
2. Normalization as three regex passes (characters the normalizer removes, turns into a space, or pads with
   spaces, such as CJK ideographs) and one character-to-string table (lower-casing, accent stripping).
3. Pre-tokenization: one regex split on the pre-tokenizer's whitespace and punctuation classes.
4. WordPiece (the extensions' operator) with each word in its own row; a word it cannot finish keeps only
   its ``[UNK]``, as `tokenizers` does; token strings to ids with ``LabelEncoder``.
5. Truncation to ``max_length`` and the post-processor's special tokens (and a prompt's tokens), padded on the right.

This is exact only where each normalizer step is a function of one character (BertNormalizer, Lowercase,
StripAccents, NFD, NFKD); anything else is refused by name. The caller checks the ids against `tokenizers` before
anything is written.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from .code_point_tables import (
    CHAR_LOCAL_NORMALIZERS,
    MAX_CODE_POINT,
    char_class,
    code_point_tables,
    normalizer_members,
)
from .text_graph_check import TokenizerConversionError

__all__ = ["CONTRIB", "OPSET", "Layout", "opset_imports", "tokenizer_graph", "tokenizer_model"]

CONTRIB = "ai.onnx.contrib"  # onnxruntime-extensions' operator domain
OPSET = 20  # StringSplit (opset 20) is the only string operator that reads a NUL character
SENTINEL_BASE = 0x100000  # Supplementary Private Use Area-B: one sentinel per added token


def _refuse(what: str) -> TokenizerConversionError:
    return TokenizerConversionError(f"{what} No ONNX text-in graph was written; use an OpenVINO variant with "
                                    "--with-tokenizer, or the bundle's normal runtime.")


def _check_components(tree: dict[str, Any]) -> None:
    norm = tree.get("normalizer") or {}
    for i, member in enumerate(normalizer_members(tree)):
        if member.get("type") not in CHAR_LOCAL_NORMALIZERS:
            where = f"normalizer.normalizers[{i}]" if norm.get("type") == "Sequence" else "normalizer"
            raise _refuse(f"The tokenizer's {where} is {member.get('type')!r}; the ONNX tokenizer reproduces only "
                          f"normalizers that map each character on its own ({sorted(CHAR_LOCAL_NORMALIZERS)}).")
    pre = (tree.get("pre_tokenizer") or {}).get("type")
    if pre != "BertPreTokenizer":
        raise _refuse(f"The tokenizer's pre_tokenizer is {pre!r}; the ONNX tokenizer reproduces BertPreTokenizer.")
    model = tree.get("model") or {}
    if model.get("type") != "WordPiece":
        raise _refuse(f"The tokenizer's model is {model.get('type')!r}; the ONNX tokenizer reproduces WordPiece.")
    trunc = tree.get("truncation") or {}
    if trunc.get("direction", "Right") != "Right":
        raise _refuse("The tokenizer truncates on the left; the ONNX tokenizer truncates on the right.")


class Layout:
    """Where the post-processor puts special tokens around one text (``A``) or a pair (``A``, ``B``), with the type
    id of every position: read by running `tokenizers`' own post-processor on one-token texts."""

    def __init__(self, tree: dict[str, Any], pairs: bool) -> None:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_str(json.dumps(tree))
        tok.no_padding()
        tok.no_truncation()
        unk = tree["model"]["unk_token"]
        one = tok.encode(unk, add_special_tokens=False)
        other = tok.encode(unk, add_special_tokens=False)
        done = tok.post_process(one, other if pairs else None, add_special_tokens=True)
        self.segments: list[list[tuple[int, int]]] = [[]]  # specials before A, [between A and B,] after
        self.text_type: list[int] = []
        for tid, kind, special in zip(done.ids, done.type_ids, done.special_tokens_mask):
            if special:
                self.segments[-1].append((int(tid), int(kind)))
            else:
                self.text_type.append(int(kind))
                self.segments.append([])
        if len(self.text_type) != (2 if pairs else 1):
            raise _refuse("The post-processor does not place each text once.")
        self.specials = sum(len(seg) for seg in self.segments)


def _added_tokens(tree: dict[str, Any]) -> list[tuple[str, int]]:
    """(content, id) of the added tokens `tokenizers` splits out of the raw text, longest first; refuses what the
    graph cannot split the same way."""
    tokens = []
    for tok in tree.get("added_tokens") or []:
        # lstrip / rstrip only take whitespace into the match, which BertPreTokenizer drops anyway
        for flag in ("normalized", "single_word"):
            if tok.get(flag):
                raise _refuse(f"Added token {tok['content']!r} has {flag}=True; the ONNX tokenizer splits out added "
                              "tokens matched on the raw text only.")
        if tok["content"]:
            tokens.append((tok["content"], int(tok["id"])))
    contents = [c for c, _ in tokens]
    for a in contents:
        for b in contents:
            overlaps = any(a.endswith(b[:k]) for k in range(1, len(b))) if a != b else False
            if a != b and (a in b or overlaps):
                raise _refuse(f"Added tokens {a!r} and {b!r} overlap; the ONNX tokenizer splits them out one after "
                              "the other, which differs from `tokenizers`' leftmost-longest match there.")
    if len(tokens) > MAX_CODE_POINT - SENTINEL_BASE:
        raise _refuse(f"The tokenizer has {len(tokens)} added tokens, more than the sentinels available.")
    return sorted(tokens, key=lambda t: -len(t[0]))


def _re2_literal(text: str) -> str:
    return "".join(c if c.isascii() and c.isalnum() else f"\\x{{{ord(c):x}}}" for c in text)


class _Graph:
    """Nodes and initializers of the tokenizer graph, names prefixed so they never meet the model graph's."""

    def __init__(self, prefix: str = "tok/") -> None:
        self.prefix, self.nodes, self.inits, self._n = prefix, [], [], 0

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{self.prefix}{hint}_{self._n}"

    def const(self, value, dtype=np.int64) -> str:
        from onnx import numpy_helper
        name = self.name("c")
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def string(self, value: str) -> str:
        from onnx import TensorProto, helper
        name = self.name("s")
        self.inits.append(helper.make_tensor(name, TensorProto.STRING, [1], [value.encode("utf-8")]))
        return name

    def op(self, op_type: str, inputs: list[str], n_out: int = 1, domain: str = "", out: list[str] | None = None,
           **attrs):
        from onnx import helper
        outs = out or [self.name(op_type) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, domain=domain, name=self.name(op_type), **attrs))
        return outs[0] if n_out == 1 else outs

    def zeros(self, length: str) -> str:
        from onnx import TensorProto, helper
        return self.op("ConstantOfShape", [self.op("Reshape", [length, self.const([1])])],
                       value=helper.make_tensor("v", TensorProto.INT64, [1], [0]))

    def ones_like(self, x: str) -> str:
        from onnx import TensorProto, helper
        return self.op("ConstantOfShape", [self.op("Shape", [x])], value=helper.make_tensor("v", TensorProto.INT64,
                                                                                             [1], [1]))

    def row_of(self, splits: str, n_items: str) -> str:
        """For ragged row splits (n_rows + 1, rows may be empty), the row of each of the n_items items."""
        inner = self.op("Slice", [splits, self.const([1]), self.const([-1])])
        marks = self.op("ScatterElements", [self.op("Concat", [self.zeros(n_items), self.const([0])], axis=0), inner,
                                            self.ones_like(inner)], axis=0, reduction="add")
        total = self.op("CumSum", [marks, self.const(0)])
        return self.op("Slice", [total, self.const([0]), self.const([-1])])

    def join_rows(self, values: str, splits: str) -> str:
        """Concatenate the strings of each ragged row: a dense (rows, longest) gather with "" filler, then join."""
        starts = self.op("Slice", [splits, self.const([0]), self.const([-1])])
        ends = self.op("Slice", [splits, self.const([1]), self.const([np.iinfo(np.int64).max])])
        lengths = self.op("Sub", [ends, starts])
        longest = self.op("Squeeze", [self.op("Max", [self.op("ReduceMax", [lengths], keepdims=1), self.const([1])])])
        cols = self.op("Unsqueeze", [self.op("Range", [self.const(0), longest, self.const(1)]), self.const([0])])
        index = self.op("Add", [self.op("Unsqueeze", [starts, self.const([1])]), cols])
        inside = self.op("Less", [cols, self.op("Unsqueeze", [lengths, self.const([1])])])
        filler = self.op("Size", [values])  # the index of the "" appended below
        dense = self.op("Gather", [self.op("Concat", [values, self.string("")], axis=0),
                                   self.op("Where", [inside, index, filler])])
        return self.op("StringJoin", [dense, self.string(""), self.const(1)], domain=CONTRIB)


def tokenizer_graph(tree: dict[str, Any], max_length: int | None, prompt_ids: Sequence[int] = (),
                    pairs: bool = False):
    """The tokenizer of ``tree`` (a tokenizer.json) as ONNX (nodes, initializers, input names, output names)
    reading the string tensor ``text`` of shape [batch] (pairs: ``text`` and ``text_pair``, truncated longest
    first). ``prompt_ids`` are put after the leading special tokens, as ``prompt + text`` tokenizes when the
    prompt's tokens do not merge with the text's."""
    from onnx import TensorProto

    _check_components(tree)
    layout = Layout(tree, pairs)
    if prompt_ids:
        layout.segments[0] = layout.segments[0] + [(int(i), layout.text_type[0]) for i in prompt_ids]
        layout.specials += len(prompt_ids)
    inputs = ["text", "text_pair"] if pairs else ["text"]
    added = _added_tokens(tree)
    model = tree["model"]
    vocab: dict[str, int] = dict(model["vocab"])
    unk = model["unk_token"]
    if unk not in vocab:
        raise _refuse(f"WordPiece's unk_token {unk!r} is not in its vocabulary.")
    tables = code_point_tables(json.dumps(tree.get("normalizer")), json.dumps(tree.get("pre_tokenizer")))
    removed = set(tables["remove"])
    sentinels = [chr(SENTINEL_BASE + i) for i in range(len(added))]
    stand_in = next((cp for cp in (1, 2, 3, 0xFFFD) if cp in removed), None)
    if 0 not in removed or stand_in is None:
        raise _refuse("The normalizer keeps NUL or control characters; the ONNX tokenizer's operators read strings "
                      "only up to a NUL, so it needs a normalizer that removes them (BertNormalizer clean_text).")
    sentinel_range = range(SENTINEL_BASE, SENTINEL_BASE + max(1, len(added)))
    if not removed.issuperset(sentinel_range):  # user-typed ones become the removed stand-in, so they must be removed
        raise _refuse("The normalizer keeps private-use characters (U+100000 and up), which the ONNX tokenizer uses "
                      "to mark added tokens.")
    g = _Graph()
    text_input = g.op("Concat", inputs, axis=0) if pairs else "text"
    # 1. NUL -> a removed stand-in (standard StringSplit, the only string op that reads NUL); added tokens -> sentinels
    parts, _ = g.op("StringSplit", [text_input], 2, delimiter="\x00")
    text = g.op("StringJoin", [parts, g.string(chr(stand_in)), g.const(1)], domain=CONTRIB)
    text = g.op("StringRegexReplace", [text, g.string(char_class(sentinel_range)), g.string(chr(stand_in))],
                domain=CONTRIB)
    for (content, _), sentinel in zip(added, sentinels):
        text = g.op("StringRegexReplace", [text, g.string(_re2_literal(content)), g.string(f" {sentinel} ")],
                    domain=CONTRIB)
    # 2. normalization, character by character
    keep_sentinels = set(range(SENTINEL_BASE, SENTINEL_BASE + len(added)))
    for key, rewrite in (("remove", ""), ("space", " "), ("pad", " \\0 ")):
        points = [cp for cp in tables[key] if cp not in keep_sentinels]
        if points:
            text = g.op("StringRegexReplace", [text, g.string(char_class(points)), g.string(rewrite)],
                        domain=CONTRIB)
    if tables["map"]:
        chars, _, _, splits = g.op("StringRegexSplitWithOffsets", [text, g.string("((?s).)"), g.string("((?s).)")],
                                   4, domain=CONTRIB)
        mapped = g.op("StringMapping", [chars], domain=CONTRIB,
                      map="\n".join(f"{c}\t{out}" for c, out in sorted(tables["map"].items())))
        text = g.join_rows(mapped, splits)
    # 3. pre-tokenization: split on whitespace runs, keep each punctuation character as a word
    punct = char_class(tables["punct"])
    split_on = f"({char_class(tables['whitespace'])}+|{punct})" if tables["whitespace"] else f"({punct})"
    words, _, _, word_splits = g.op("StringRegexSplitWithOffsets", [text, g.string(split_on), g.string(f"({punct})")],
                                    4, domain=CONTRIB)
    # 4. WordPiece, one word per row; a word it could not finish keeps only its [UNK]
    wp_vocab = dict(vocab)
    wp_vocab.update({s: tid for s, (_, tid) in zip(sentinels, added)})
    pieces, piece_splits, _, _ = g.op(
        "WordpieceTokenizer", [words, g.const(np.zeros(0, np.int64))], 4, domain=CONTRIB,
        vocab=json.dumps(wp_vocab, ensure_ascii=False), suffix_indicator=model.get("continuing_subword_prefix", "##"),
        unknown_token=unk, max_input_chars_per_word=int(model.get("max_input_chars_per_word", 100)))
    ids = g.op("LabelEncoder", [pieces], domain="ai.onnx.ml", keys_strings=list(wp_vocab),
               values_int64s=[int(v) for v in wp_vocab.values()], default_int64=int(vocab[unk]))
    word_of = g.row_of(piece_splits, g.op("Size", [ids]))
    is_unk = g.op("Equal", [pieces, g.string(unk)])
    unk_count = g.op("ScatterElements", [g.zeros(g.op("Size", [words])), word_of,
                                         g.op("Cast", [is_unk], to=TensorProto.INT64)], axis=0, reduction="add")
    word_failed = g.op("Greater", [g.op("Gather", [unk_count, word_of]), g.const(0)])
    keep = g.op("Or", [g.op("Not", [word_failed]), is_unk])
    ids = g.op("Compress", [ids, keep], axis=0)
    text_of = g.op("Gather", [g.row_of(word_splits, g.op("Size", [words])), g.op("Compress", [word_of, keep], axis=0)])
    # 5. truncation, special tokens, right padding
    batch = g.op("Size", ["text"])
    counts = g.op("ScatterElements", [g.zeros(g.op("Size", [text_input])), text_of, g.ones_like(text_of)], axis=0,
                  reduction="add")
    first = g.op("CumSum", [counts, g.const(0)], exclusive=1)
    position = g.op("Sub", [g.op("Range", [g.const(0), g.op("Size", [ids]), g.const(1)]),
                            g.op("Gather", [first, text_of])])
    budget = (max_length if max_length else 10 ** 9) - layout.specials
    if budget < (2 if pairs else 1):
        raise _refuse(f"max_length {max_length} leaves no room for the text after {layout.specials} special and "
                      "prompt tokens.")
    if pairs:  # longest first, as tokenizers does: the shorter text keeps up to half, the longer the rest
        half = g.const([budget // 2])
        n1 = g.op("Slice", [counts, g.const([0]), g.op("Reshape", [batch, g.const([1])])])
        n2 = g.op("Slice", [counts, g.op("Reshape", [batch, g.const([1])]), g.const([np.iinfo(np.int64).max])])
        first_longer = g.op("Greater", [n1, n2])
        short2 = g.op("Min", [n2, half])
        short1 = g.op("Min", [n1, half])
        kept1 = g.op("Where", [first_longer, g.op("Min", [n1, g.op("Sub", [g.const([budget]), short2])]), short1])
        kept2 = g.op("Where", [first_longer, short2, g.op("Min", [n2, g.op("Sub", [g.const([budget]), short1])])])
        kept_rows = [kept1, kept2]
    else:
        kept_rows = [g.op("Min", [counts, g.const([budget])])]
    fits = g.op("Less", [position, g.op("Gather", [g.op("Concat", kept_rows, axis=0) if pairs else kept_rows[0],
                                                   text_of])])
    ids, text_of, position = (g.op("Compress", [x, fits], axis=0) for x in (ids, text_of, position))
    # columns: each segment of specials, then a text, in order; offsets per batch row
    starts, offset = [], g.zeros(batch)
    for k, segment in enumerate(layout.segments):
        starts.append(offset)
        offset = g.op("Add", [offset, g.const(len(segment))])
        if k < len(kept_rows):
            starts.append(offset)
            offset = g.op("Add", [offset, kept_rows[k]])
    total = offset
    width = g.op("ReduceMax", [total], keepdims=1)
    shape = g.op("Concat", [g.op("Reshape", [batch, g.const([1])]), width], axis=0)
    pad_id = int((tree.get("padding") or {}).get("pad_id", 0))
    grids = {"input_ids": g.op("Expand", [g.const(pad_id), shape]),
             "token_type_ids": g.op("Expand", [g.const(0), shape])}
    rows = g.op("Unsqueeze", [g.op("Range", [g.const(0), batch, g.const(1)]), g.const([1])])

    def place(name: str, row_idx: str, col: str, values: str) -> None:
        where = g.op("Concat", [row_idx, g.op("Unsqueeze", [col, g.const([1])])], axis=1)
        grids[name] = g.op("ScatterND", [grids[name], where, values])

    # the text tokens: row = text index mod batch, column = its text's start + position
    row_of_token = g.op("Mod", [text_of, batch]) if pairs else text_of
    is_second = g.op("Cast", [g.op("GreaterOrEqual", [text_of, batch])], to=TensorProto.INT64) if pairs else None
    text_starts = g.op("Concat", [starts[1], starts[3]], axis=0) if pairs else starts[1]
    col = g.op("Add", [g.op("Gather", [text_starts, text_of]), position])
    token_row = g.op("Unsqueeze", [row_of_token, g.const([1])])
    place("input_ids", token_row, col, ids)
    types = g.op("Add", [g.op("Mul", [is_second, g.const(layout.text_type[1] - layout.text_type[0])]),
                         g.const(layout.text_type[0])]) if pairs else \
        g.op("Add", [g.op("Mul", [position, g.const(0)]), g.const(layout.text_type[0])])
    place("token_type_ids", token_row, col, types)
    segment_starts = starts[0::2]
    for segment, seg_start in zip(layout.segments, segment_starts):
        for k, (tid, kind) in enumerate(segment):
            at = g.op("Add", [seg_start, g.const(k)])
            place("input_ids", rows, at, g.op("Add", [g.op("Mul", [seg_start, g.const(0)]), g.const(tid)]))
            place("token_type_ids", rows, at, g.op("Add", [g.op("Mul", [seg_start, g.const(0)]), g.const(kind)]))
    g.op("Identity", [grids["input_ids"]], out=["input_ids"])
    g.op("Identity", [grids["token_type_ids"]], out=["token_type_ids"])
    cols = g.op("Unsqueeze", [g.op("Range", [g.const(0), g.op("Squeeze", [width]), g.const(1)]), g.const([0])])
    mask = g.op("Less", [cols, g.op("Unsqueeze", [total, g.const([1])])])
    g.op("Cast", [mask], out=["attention_mask"], to=TensorProto.INT64)
    return g.nodes, g.inits, inputs, ["input_ids", "attention_mask", "token_type_ids"]


def tokenizer_model(tree: dict[str, Any], max_length: int | None, prompt_ids: Sequence[int] = (),
                    pairs: bool = False):
    """The tokenizer alone as an ONNX model (for checking its ids against `tokenizers`)."""
    from onnx import TensorProto, helper

    nodes, inits, inputs, outputs = tokenizer_graph(tree, max_length, prompt_ids, pairs)
    graph = helper.make_graph(nodes, "tokenizer", [helper.make_tensor_value_info(i, TensorProto.STRING, [None])
                                                   for i in inputs],
                              [helper.make_tensor_value_info(o, TensorProto.INT64, [None, None]) for o in outputs],
                              inits)
    return helper.make_model(graph, opset_imports=opset_imports())


def opset_imports():
    from onnx import helper
    return [helper.make_opsetid("", OPSET), helper.make_opsetid(CONTRIB, 1), helper.make_opsetid("ai.onnx.ml", 3)]
