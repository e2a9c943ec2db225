"""encode(long_text="chunk"): texts past max_seq_length embedded as overlapping windows, pooled per text."""

import threading
import time
import tracemalloc

import numpy as np
import pytest

from st_runtime import InputValidationError, SentenceTransformer, corpus
from st_runtime.config import EncodeConfig
from st_runtime.similarity import normalize_embeddings

SHORT = corpus.queries(8, seed=31) + ["", "x"]
LONG = corpus.passages(3, seed=32, min_words=300, max_words=700)


@pytest.fixture(scope="module", params=["bert-mean", "qwen3-lasttoken"])
def model(request, export_bundle):
    """A right-padded encoder ([CLS] ... [SEP], Normalize) and a left-padded decoder (EOS appended, Normalize)."""
    return SentenceTransformer(export_bundle(request.param))


def _windows(model, text, stride, prompt=""):
    """The window rows of ``text``, cut by hand from its one untruncated tokenization."""
    ids, types = model.tokenizer.with_max_length(None).encode([prompt + text])[0]
    probe = model.tokenizer.encodings(["a"])[0]
    plain = [i for i, s in enumerate(probe.special_tokens_mask) if not s]
    head = model.tokenizer.prompt_length(prompt) if prompt else plain[0]
    tail = len(probe.ids) - plain[-1] - 1
    width = model.max_seq_length - head - tail
    body = ids[head: len(ids) - tail]
    assert len(body) > width
    rows, start = [], 0
    while True:
        piece = slice(start, min(start + width, len(body)))
        rows.append((ids[:head] + body[piece] + ids[len(ids) - tail:], types[:head] + types[head:][piece] +
                     types[len(types) - tail:]))
        if start + width >= len(body):
            return rows, [piece.stop - piece.start for piece in [slice(s, min(s + width, len(body)))
                                                                  for s in range(0, start + 1, stride)]]
        start += stride


def test_short_texts_are_identical_to_truncate(model):
    for prompt in (None, "Represent this: "):
        plain = model.encode(SHORT, prompt=prompt)
        assert np.array_equal(plain, model.encode(SHORT, prompt=prompt, long_text="chunk"))
        assert np.array_equal(plain, model.encode(SHORT, prompt=prompt, long_text="chunk", chunk_pooling="max"))


@pytest.mark.parametrize("pooling", ["mean", "weighted", "max"])
def test_chunk_pooling_equals_pooling_the_windows_by_hand(model, pooling):
    stride = 40
    text = LONG[1]
    rows, sizes = _windows(model, text, stride)
    assert len(rows) >= 3 and max(len(ids) for ids, _ in rows) == model.max_seq_length
    windows = model.encode_rows(rows)  # each window embedded as an ordinary (truncate) text
    if pooling == "max":
        expected = windows.max(axis=0)
    else:
        weights = np.asarray(sizes if pooling == "weighted" else [1] * len(rows), dtype=np.float64)
        expected = (windows.astype(np.float64) * weights[:, None]).sum(0) / weights.sum()
    expected = normalize_embeddings(expected[None].astype(np.float32))[0]  # the models end in Normalize
    got = model.encode(text, long_text="chunk", chunk_stride=stride, chunk_pooling=pooling)
    assert np.abs(got - expected).max() <= 1e-6
    assert abs(np.linalg.norm(got) - 1) <= 1e-5
    assert np.abs(got - model.encode(text)).max() > 1e-3  # truncation alone sees only the first window


def test_windows_carry_the_prompt(export_bundle):
    model = SentenceTransformer(export_bundle("bert-prompts"))  # "query: " prompt, no Normalize
    prompt = model.prompts["query"]
    rows, _ = _windows(model, LONG[0], 60, prompt)
    expected = model.encode_rows(rows).mean(axis=0)
    got = model.encode(LONG[0], prompt_name="query", long_text="chunk", chunk_stride=60)
    assert np.abs(got - expected).max() <= 1e-5


def test_order_kept_and_same_batches_as_everything_else(model):
    texts = [SHORT[0], LONG[0], SHORT[1], LONG[1], LONG[2], SHORT[2]]
    together = model.encode(texts, long_text="chunk", batch_size=5)
    alone = np.stack([model.encode(t, long_text="chunk") for t in texts])
    assert np.abs(together - alone).max() <= 1e-5
    plain = model.encode(texts)
    for i in (0, 2, 5):
        assert np.abs(together[i] - plain[i]).max() <= 1e-5
    # the model's configuration carries the setting (what pool workers, embed and serve receive)
    chunked = model.config.replace(long_text="chunk")
    assert EncodeConfig.from_dict(chunked.to_dict()) == chunked
    assert np.array_equal(model.encode(texts, config=chunked, batch_size=5), together)


def _peak_rss_during(fn):
    psutil = pytest.importorskip("psutil")
    proc, peak, done = psutil.Process(), [0], threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.005)

    before = proc.memory_info().rss
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        result = fn()
    finally:
        done.set()
        thread.join()
    return result, max(peak[0], proc.memory_info().rss) - before


def test_a_text_of_100k_words_in_bounded_memory(export_bundle):
    model = SentenceTransformer(export_bundle("bert-mean"))
    text = " ".join(corpus.passages(40, seed=33, min_words=2500, max_words=2500))
    assert len(text.split()) == 100_000
    model.encode(LONG, long_text="chunk")  # the graph's buffers exist before measuring
    tracemalloc.start()
    try:
        emb, rss_growth = _peak_rss_during(lambda: model.encode([text, SHORT[0]], long_text="chunk"))
        _, python_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert emb.shape == (2, 32) and np.isfinite(emb).all()
    assert np.array_equal(emb[1], model.encode(SHORT[0]))
    tokens = len(model.tokenizer.with_max_length(None).encode([text])[0][0])
    assert tokens > 120_000
    # One tokenization (the ids as Python ints, ~36 bytes a token, their int64 copies, 16 bytes) plus per-window
    # bookkeeping and one padded batch at a time. Measured: 77 bytes a token, RSS +96 MB (mostly the tokenizers
    # library's own Encoding of 146k tokens), under load on a 2-core EPYC.
    assert python_peak <= 120 * tokens, f"{python_peak / 1e6:.1f} MB of Python/numpy allocations for {tokens} tokens"
    assert rss_growth <= 200e6, f"RSS grew {rss_growth / 1e6:.0f} MB"


@pytest.mark.parametrize("changes, match", [
    ({"chunk_stride": 0}, "chunk_stride"), ({"chunk_stride": -3}, "chunk_stride"),
    ({"chunk_stride": True}, "chunk_stride"), ({"chunk_stride": 1.5}, "chunk_stride"),
    ({"long_text": "split"}, "long_text"), ({"chunk_pooling": "sum"}, "chunk_pooling"),
])
def test_bad_settings_are_typed_errors(model, changes, match):
    changes = dict(changes)
    with pytest.raises(InputValidationError, match=match):
        model.encode(LONG[0], long_text=changes.pop("long_text", "chunk"), **changes)
    with pytest.raises(InputValidationError, match=match):
        EncodeConfig(long_text="chunk", **changes) if changes else EncodeConfig(long_text="split")


def test_stride_must_leave_windows_overlapping(model):
    head_and_tail = 2 if "bert" in repr(model) else 1
    width = model.max_seq_length - head_and_tail
    for stride in (width, width + 10):
        with pytest.raises(InputValidationError, match=f"between 1 and {width - 1}"):
            model.encode(LONG[0], long_text="chunk", chunk_stride=stride)
    model.encode(LONG[0], long_text="chunk", chunk_stride=width - 1)
    with pytest.raises(InputValidationError, match="output_value"):
        model.encode(LONG[0], long_text="chunk", output_value="token_embeddings")


def test_pool_workers_receive_the_setting(export_bundle):
    """set_long_text makes a new configuration; pool workers get it whole with every chunk."""
    model = SentenceTransformer(export_bundle("bert-mean")).set_long_text("chunk", 50)
    texts = SHORT[:3] + LONG
    single = model.encode(texts)
    assert np.abs(single[3:] - model.encode(texts[3:], long_text="truncate")).max() > 1e-3
    pool = model.start_multi_process_pool(processes=1)
    try:
        pooled = model.encode(texts, pool=pool, chunk_size=2)
    finally:
        model.stop_multi_process_pool(pool)
    assert np.abs(pooled - single).max() <= 1e-6
