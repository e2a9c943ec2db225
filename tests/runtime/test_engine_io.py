"""Engine waste removed without changing results: outputs fetched on demand; padding to a multiple of 8 tokens
(opt-in) changes nothing."""

import importlib.util

import numpy as np
import pytest

from st_runtime import SentenceTransformer, corpus
from st_runtime.backends import OnnxRuntimeSession
from st_runtime.engine import PAD_MULTIPLE, GraphRunner, padded_width, plan_batches

HAS_OPENVINO = importlib.util.find_spec("openvino") is not None

# Every bi-encoder pooling mode: cls, max, mean, mean_sqrt_len_tokens, weightedmean, lasttoken (right and left
# padding), include_prompt=False, Dense, relative positions (T5, DeBERTa), local attention (ModernBERT).
BI_ENCODERS = [
    "bert-mean", "bert-cls-dense", "bert-max", "bert-mean-sqrt", "bert-weightedmean", "bert-prompts",
    "bert-noprompt-pool", "bert-lasttoken", "mpnet-mean", "distilbert-cls", "xlmr-mean", "deberta-mean",
    "t5-mean-dense", "modernbert-mean", "qwen3-lasttoken",
]
TEXTS = (corpus.queries(12, seed=71) + corpus.passages(6, seed=72)
         + corpus.passages(1, seed=73, min_words=400, max_words=500) + ["", "x"])
BACKENDS = ["onnx"] + (["openvino"] if HAS_OPENVINO else [])


def test_padded_width():
    assert [padded_width(n, 8) for n in (1, 7, 8, 9, 16, 17)] == [8, 8, 8, 16, 16, 24]
    assert padded_width(13, None) == 13
    assert padded_width(126, 8, limit=126) == 126  # never past max_seq_length
    assert padded_width(130, 8, limit=126) == 130  # a row already past the limit stays as it is
    assert padded_width(0, 8) == 0


def test_token_budget_counts_the_padded_width():
    assert [len(b) for b in plan_batches([9] * 8, batch_size=32, max_tokens=64, pad_multiple=8)] == [4, 4]
    assert [len(b) for b in plan_batches([9] * 8, batch_size=32, max_tokens=64)] == [7, 1]


class _Spy:
    """Records what the engine asks of the session."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []
        self.input_names, self.output_names, self.description = inner.input_names, inner.output_names, "spy"

    def run(self, feeds, outputs=None):
        self.calls.append((feeds["input_ids"].shape, None if outputs is None else list(outputs)))
        return self.inner.run(feeds, outputs)


def _model(bundle, backend: str) -> SentenceTransformer:
    model = SentenceTransformer(bundle)
    if backend == "openvino":
        from st_runtime.backends import OpenVINOSession

        model._runner.session = OpenVINOSession(bundle / "model.onnx")  # OpenVINO reads the ONNX graph directly
    return model


def _encode_all(model, prompt=None):
    out = [model.encode(TEXTS, batch_size=bs, prompt=prompt) for bs in (1, 5, 32)]
    out.append(np.concatenate(model.encode(TEXTS[:6], output_value="token_embeddings", prompt=prompt)))
    return out


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", BI_ENCODERS)
def test_padding_to_a_multiple_of_8_changes_nothing(name, backend, export_bundle):
    model = _model(export_bundle(name), backend)
    runner = model._runner
    left = model.tokenizer.spec.padding_side == "left"
    assert runner.pad_multiple is None  # off by default (it costs query throughput, see GraphRunner)
    assert runner.pad_to(PAD_MULTIPLE) is (not left)  # left padding would move real tokens
    assert runner.pad_multiple == (None if left else PAD_MULTIPLE)
    prompt = next((p for p in model.prompts.values() if p), None)
    padded = _encode_all(model, prompt)
    spy = runner.session = _Spy(runner.session)
    model.encode(TEXTS, batch_size=5)
    widths = [shape[1] for shape, _ in spy.calls]
    if not left:
        limit = runner.width_limit()
        assert all(w % PAD_MULTIPLE == 0 or w == limit for w in widths), widths
    runner.session, runner.pad_multiple = spy.inner, None
    plain = _encode_all(model, prompt)
    # OpenVINO's kernels round differently for different shapes, so a vector already moves by a few 1e-7 with the
    # batch it is in: padding may move it by that much (the sum of both batch spreads), never more.
    spread = _batch_spread(plain) + _batch_spread(padded)
    for a, b in zip(padded, plain):
        assert a.shape == b.shape
        assert np.isfinite(a).all()
        assert np.abs(a - b).max() <= 1e-6 + spread, f"{name} on {backend}: {np.abs(a - b).max():.3g} ({spread:.3g})"


def _batch_spread(results) -> float:
    """Largest difference of one text's embedding between the batch sizes 1, 5 and 32."""
    return max(float(np.abs(a - b).max()) for a in results[:3] for b in results[:3])


@pytest.mark.parametrize("backend", BACKENDS)
def test_only_the_outputs_a_call_needs_are_fetched(backend, export_bundle):
    model = _model(export_bundle("bert-mean"), backend)
    spy = model._runner.session = _Spy(model._runner.session)
    model.encode(TEXTS[:3])
    assert {tuple(outputs) for _, outputs in spy.calls} == {("sentence_embedding",)}
    spy.calls.clear()
    tokens = model.encode(TEXTS[:3], output_value="token_embeddings")
    assert {outputs for _, outputs in spy.calls} == {None} and len(tokens) == 3


def test_onnxruntime_returns_just_the_named_outputs(export_bundle):
    bundle = export_bundle("bert-mean")
    session = OnnxRuntimeSession(bundle / "model.onnx")
    runner = GraphRunner(SentenceTransformer(bundle).tokenizer, session)
    feeds = runner.feeds(runner.tokenizer(["one text", "and another one"]))
    assert set(session.run(feeds, ["sentence_embedding"])) == {"sentence_embedding"}
    both = session.run(feeds)
    assert set(both) == {"sentence_embedding", "token_embeddings"}
    assert np.array_equal(session.run(feeds, ["sentence_embedding"])["sentence_embedding"], both["sentence_embedding"])


@pytest.mark.skipif(not HAS_OPENVINO, reason="needs openvino")
def test_openvino_fetches_only_named_outputs_from_one_compilation_and_results_outlive_the_call(export_bundle):
    from st_runtime.backends import OpenVINOSession

    bundle = export_bundle("bert-mean", ("openvino",))
    session = OpenVINOSession(bundle / "openvino_model.xml")
    compiled = session._compiled()
    tok = SentenceTransformer(bundle).tokenizer
    runner = GraphRunner(tok, session)
    first_feeds = runner.feeds(tok(["first text here", "second"]))
    first = session.run(first_feeds, ["sentence_embedding"])
    assert set(first) == {"sentence_embedding"}
    kept = first["sentence_embedding"].copy()
    session.run(runner.feeds(tok(["a completely different batch", "of texts", "three"])), ["sentence_embedding"])
    assert np.array_equal(first["sentence_embedding"], kept)  # shared output buffers were copied out
    full = session.run(first_feeds)
    assert set(full) == {"sentence_embedding", "token_embeddings"}
    assert session._compiled() is compiled and session._throughput is None  # the same compilation serves both
    assert np.array_equal(full["sentence_embedding"], kept)


@pytest.mark.skipif(not HAS_OPENVINO, reason="needs openvino")
@pytest.mark.parametrize("outputs", [["sentence_embedding"], None])
def test_several_batches_in_flight_come_back_in_order_with_the_same_values(outputs, export_bundle, monkeypatch):
    monkeypatch.setenv("ST_RUNTIME_BATCHES_IN_FLIGHT", "on")  # whatever this machine's core count
    from st_runtime.backends import OpenVINOSession

    bundle = export_bundle("bert-mean", ("openvino",))
    session = OpenVINOSession(bundle / "openvino_model.xml")
    tok = SentenceTransformer(bundle).tokenizer
    runner = GraphRunner(tok, session)
    feeds = [runner.feeds(tok(TEXTS[i: i + n])) for i, n in ((0, 3), (3, 1), (4, 7), (11, 2), (13, 6), (19, 2))]
    one_by_one = [session.run(f, outputs) for f in feeds]
    in_flight = list(session.run_many(iter(feeds), outputs))
    assert len(in_flight) == len(feeds) and session._throughput is not None  # the streams path ran
    for a, b in zip(in_flight, one_by_one):
        assert set(a) == set(b)
        for name in a:
            assert a[name].shape == b[name].shape
            assert np.abs(a[name] - b[name]).max() <= 1e-6
    stopped = session.run_many(iter(feeds), outputs)
    next(stopped)
    stopped.close()  # a consumer that stops early waits for the requests still reading its inputs
    again = list(session.run_many(iter(feeds[:2]), outputs))
    assert np.abs(again[1][next(iter(again[1]))] - one_by_one[1][next(iter(one_by_one[1]))]).max() <= 1e-6


@pytest.mark.skipif(not HAS_OPENVINO, reason="needs openvino")
def test_encode_of_many_batches_in_flight_matches_batch_by_batch(export_bundle, monkeypatch):
    monkeypatch.setenv("ST_RUNTIME_BATCHES_IN_FLIGHT", "on")
    model = SentenceTransformer(export_bundle("bert-mean", ("openvino",)), variant="openvino")
    assert hasattr(model._runner.session, "run_many")
    many = model.encode(TEXTS, batch_size=4)  # 6 batches: several in flight
    spy = model._runner.session = _Spy(model._runner.session)  # no run_many: one batch at a time
    single = model.encode(TEXTS, batch_size=4)
    assert len(spy.calls) >= 5
    assert np.abs(many - single).max() <= 1e-6


@pytest.mark.skipif(not HAS_OPENVINO, reason="needs openvino")
def test_batches_in_flight_can_be_switched_off(export_bundle, monkeypatch):
    model = SentenceTransformer(export_bundle("bert-mean", ("openvino",)), variant="openvino")
    session = model._runner.session
    monkeypatch.setenv("ST_RUNTIME_BATCHES_IN_FLIGHT", "off")
    off = model.encode(TEXTS, batch_size=4)
    assert session._throughput is None  # no THROUGHPUT compilation, so none of its memory
    monkeypatch.setenv("ST_RUNTIME_BATCHES_IN_FLIGHT", "on")
    on = model.encode(TEXTS, batch_size=4)
    assert session._throughput is not None
    assert np.abs(on - off).max() <= 1e-6


def test_batches_in_flight_by_default_from_four_threads(monkeypatch):
    from st_runtime.backends import batches_in_flight

    monkeypatch.delenv("ST_RUNTIME_BATCHES_IN_FLIGHT", raising=False)
    assert not batches_in_flight(2) and not batches_in_flight(3) and batches_in_flight(4) and batches_in_flight(16)
    monkeypatch.setenv("ST_RUNTIME_BATCHES_IN_FLIGHT", "auto")
    assert not batches_in_flight(2) and batches_in_flight(8)
    monkeypatch.setenv("ST_RUNTIME_BATCHES_IN_FLIGHT", "yes")
    assert batches_in_flight(1)
    monkeypatch.setenv("ST_RUNTIME_BATCHES_IN_FLIGHT", "0")
    assert not batches_in_flight(64)
