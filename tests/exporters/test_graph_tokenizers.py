"""The tokenizers inside text graphs against `tokenizers` itself: the ONNX tokenizer (exporters/onnx_tokenizer.py) and
openvino-tokenizers' conversion of the rewritten tokenizer.json (exporters/code_point_tables.py) give the same ids on
the check texts and on random Unicode text (hypothesis), the ONNX one on pairs truncated longest-first too; what the
ONNX tokenizer cannot reproduce is refused by name."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("onnxruntime_extensions")

from st_runtime.export.onnx_text_graph import onnx_session
from st_runtime.export.onnx_tokenizer import tokenizer_model
from st_runtime.export.text_graph_check import TokenizerConversionError, check_texts

MAX_LENGTH = 48


@pytest.fixture(scope="module")
def minilm_tree(model_path) -> dict:
    return json.loads((model_path("minilm-real") / "tokenizer.json").read_text(encoding="utf-8"))


def _reference(tree: dict, max_length: int):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(json.dumps(tree))
    tok.no_padding()
    tok.enable_truncation(max_length)
    return tok


@pytest.fixture(scope="module")
def single(minilm_tree):
    return onnx_session(tokenizer_model(minilm_tree, MAX_LENGTH)), _reference(minilm_tree, MAX_LENGTH)


@pytest.fixture(scope="module")
def pairs(minilm_tree):
    return onnx_session(tokenizer_model(minilm_tree, MAX_LENGTH, pairs=True)), _reference(minilm_tree, MAX_LENGTH)


@pytest.fixture(scope="module")
def openvino_converted(minilm_tree):
    """openvino-tokenizers' conversion of MiniLM's tokenizer.json after openvino_exact_tree, compiled."""
    ov = pytest.importorskip("openvino")
    ovt = pytest.importorskip("openvino_tokenizers")
    from st_runtime.export.code_point_tables import openvino_exact_tree
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    rewritten = openvino_exact_tree(minilm_tree)
    assert rewritten["normalizer"]["normalizers"][-1]["type"] == "Precompiled"
    tok = Tokenizer.from_str(json.dumps(rewritten))
    tok.no_padding()
    tok.no_truncation()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, model_input_names=["input_ids", "attention_mask"])
    compiled = ov.Core().compile_model(ovt.convert_tokenizer(fast, max_length=MAX_LENGTH, truncation=True), "CPU")
    return compiled, _reference(minilm_tree, MAX_LENGTH)


def _ov_ids(compiled, texts):
    out = compiled([np.array(texts)])
    return [list(map(int, r[m.astype(bool)])) for r, m in zip(out["input_ids"], out["attention_mask"])]


def _ids(session, texts, pair_texts=None):
    feeds = {"text": np.array(texts, dtype=object)}
    if pair_texts is not None:
        feeds["text_pair"] = np.array(pair_texts, dtype=object)
    ids, mask, types = session.run(None, feeds)
    mask = mask.astype(bool)
    return [(list(map(int, r[m])), list(map(int, t[m]))) for r, t, m in zip(ids, types, mask)]


def test_check_texts_tokenize_identically(single, minilm_tree):
    session, ref = single
    texts = check_texts(MAX_LENGTH, minilm_tree)
    assert any("\x00" in t for t in texts) and any("[SEP]" in t for t in texts)  # NUL and typed special tokens
    for start in range(0, len(texts), 64):
        batch = texts[start:start + 64]
        for text, (ids, types) in zip(batch, _ids(session, batch)):
            assert ids == ref.encode(text).ids, text
            assert types == ref.encode(text).type_ids


_ADDED = ["[CLS]", "[SEP]", "[MASK]", "[UNK]", "[PAD]", "[sep]"]
_TEXT = st.lists(st.one_of(st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
                           st.sampled_from(_ADDED + [" ", "\x00", "e\u0301", "ς", "İ", "ﬁ", "日本", "\u200d"])),
                 max_size=12).map("".join)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_TEXT, min_size=1, max_size=4))
def test_random_unicode_tokenizes_identically(single, texts):
    session, ref = single
    for text, (ids, _) in zip(texts, _ids(session, texts)):
        assert ids == ref.encode(text).ids, ascii(text)


def test_openvino_rewrite_check_texts_tokenize_identically(openvino_converted, minilm_tree):
    compiled, ref = openvino_converted
    texts = check_texts(MAX_LENGTH, minilm_tree)
    for start in range(0, len(texts), 64):
        batch = texts[start:start + 64]
        for text, ids in zip(batch, _ov_ids(compiled, batch)):
            assert ids == ref.encode(text).ids, text


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_TEXT, min_size=1, max_size=4))
def test_openvino_rewrite_random_unicode_tokenizes_identically(openvino_converted, texts):
    compiled, ref = openvino_converted
    for text, ids in zip(texts, _ov_ids(compiled, texts)):
        assert ids == ref.encode(text).ids, ascii(text)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40), _TEXT), min_size=1, max_size=4))
def test_pairs_truncate_longest_first_like_tokenizers(pairs, rows):
    """Pair lengths around the budget (ties, odd budget: 48 - 3 = 45) and random text: ids and type ids equal."""
    session, ref = pairs
    first = [" ".join(["word"] * a) + text for a, _, text in rows]
    second = [" ".join(["other"] * b) for _, b, _ in rows]
    for a, b, (ids, types) in zip(first, second, _ids(session, first, second)):
        want = ref.encode(a, b)
        assert (ids, types) == (want.ids, want.type_ids), (ascii(a), b)


def test_prompt_ids_follow_the_leading_special_tokens(minilm_tree):
    ref = _reference(minilm_tree, MAX_LENGTH)
    prompt = "query: "
    prompt_ids = _reference(minilm_tree, 10 ** 6).encode(prompt, add_special_tokens=False).ids
    session = onnx_session(tokenizer_model(minilm_tree, MAX_LENGTH, prompt_ids))
    texts = ["", "what is it?", " ".join(["long"] * 80)]
    assert [ids for ids, _ in _ids(session, texts)] == [ref.encode(prompt + t).ids for t in texts]


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.update(normalizer={"type": "Sequence", "normalizers": [t["normalizer"], {"type": "Nmt"}]}),
     r"normalizer\.normalizers\[1\] is 'Nmt'"),
    (lambda t: t.update(normalizer={"type": "NFC"}), "normalizer is 'NFC'"),
    (lambda t: t.update(pre_tokenizer={"type": "Whitespace"}), "pre_tokenizer is 'Whitespace'"),
    (lambda t: t["added_tokens"].append({"id": 5, "content": "[SEP]x", "single_word": False, "lstrip": False,
                                         "rstrip": False, "normalized": False, "special": True}), "overlap"),
    (lambda t: t["added_tokens"][1].update(single_word=True), "single_word=True"),
    (lambda t: t["added_tokens"][1].update(normalized=True), "normalized=True"),
    (lambda t: t["normalizer"].update(clean_text=False), "NUL"),
])
def test_what_it_cannot_reproduce_is_refused(minilm_tree, edit, message):
    tree = json.loads(json.dumps(minilm_tree))
    edit(tree)
    with pytest.raises(TokenizerConversionError, match=message):
        tokenizer_model(tree, MAX_LENGTH)
