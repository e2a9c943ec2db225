"""Router models whose query and document routes are different transformers, exported route by route: encode,
encode_query, encode_document and task= equal sentence-transformers 6 (fp32, 1e-5) in ONNX Runtime and OpenVINO, at
batch sizes 1 and 7, past each route's max_seq_length; unknown routes are typed errors naming the routes.

Each tiny model's export (two graphs, parity per route, OpenVINO per route) takes a minute on a loaded machine, so
these are slow tests, except router-dense in ONNX Runtime (its own export without OpenVINO), which the default run
keeps so that CI checks a Router end to end."""

import json

import numpy as np
import pytest

from st_runtime import SentenceTransformer, SparseEncoder, corpus
from st_runtime.errors import InputValidationError

SLOW = pytest.mark.slow
ATOL = 1e-5
TEXTS = (corpus.queries(6, seed=301) + corpus.passages(3, seed=302)
         + corpus.passages(2, seed=303, min_words=200, max_words=260) + ["", "x"])


@pytest.fixture(scope="module")
def reference(model_path):
    from sentence_transformers import SentenceTransformer as TorchST
    from sentence_transformers import SparseEncoder as TorchSparse

    cache = {}

    def get(name):
        if name not in cache:
            cls = TorchSparse if name.startswith("splade") else TorchST
            cache[name] = cls(str(model_path(name)), device="cpu")
        return cache[name]

    return get


def _bundle(export_bundle, name, variant="openvino"):
    if variant == "onnx" and name == "router-dense":
        return export_bundle(name)  # the default run's export: ONNX only
    pytest.importorskip("openvino")
    return export_bundle(name, ("openvino",))


def _dense(x):
    if hasattr(x, "to_dense"):
        return x.to_dense().float().numpy()
    return x.toarray() if hasattr(x, "toarray") else np.asarray(x)


def same(ref, ours, what):
    ref, ours = _dense(ref), _dense(ours)
    assert ref.shape == ours.shape, what
    diff = float(np.abs(ref.astype(np.float64) - ours).max())
    assert diff <= ATOL, f"{what}: max abs {diff:.3g}"


@pytest.mark.parametrize("variant,name", [
    ("onnx", "router-dense"),  # in the default run
    pytest.param("openvino", "router-dense", marks=SLOW), pytest.param("onnx", "router-mapped", marks=SLOW),
    pytest.param("openvino", "router-mapped", marks=SLOW),
])
def test_dense_router_parity(name, variant, export_bundle, reference):
    ref = reference(name)
    ours = SentenceTransformer(_bundle(export_bundle, name, variant), variant=variant)
    assert ours.max_seq_length == ref.max_seq_length
    assert ours.get_embedding_dimension() == ref.get_embedding_dimension()
    assert len(ours.routes) == 2
    for batch_size in (1, 7, 32):
        for method in ("encode", "encode_query", "encode_document"):
            same(getattr(ref, method)(TEXTS, batch_size=batch_size), getattr(ours, method)(TEXTS, batch_size=batch_size),
                 f"{name}/{variant} {method} batch_size={batch_size}")
    for task in [*ours.routes, "query", "document"]:
        same(ref.encode(TEXTS, task=task), ours.encode(TEXTS, task=task), f"{name}/{variant} task={task}")
    assert np.abs(ours.encode_query(TEXTS) - ours.encode_document(TEXTS)).max() > 0.1  # two different graphs
    same(ref.encode_query(TEXTS[0]), ours.encode_query(TEXTS[0]), "one text")
    tokens = ours.encode(TEXTS[:3], output_value="token_embeddings", task="query")
    for a, b in zip(ref.encode(TEXTS[:3], output_value="token_embeddings", task="query"), tokens):
        same(a, b, f"{name} token_embeddings")
    with pytest.raises(InputValidationError, match="No route found for task 'nope'.*task="):
        ours.encode(TEXTS, task="nope")


@SLOW
def test_texts_past_each_routes_length(export_bundle, reference):
    """The query route truncates at 24 tokens, the document route at 48 (as their Transformers do); setting
    max_seq_length sets every route, as sentence-transformers' Router does."""
    ref = reference("router-dense")
    ours = SentenceTransformer(_bundle(export_bundle, "router-dense"))
    long = corpus.passages(3, seed=304, min_words=120, max_words=140)
    assert ours.tokenizer_for("query").max_seq_length == 24 and ours.tokenizer_for("document").max_seq_length == 48
    assert all(len(ids) == 24 for ids, _ in ours.tokenizer_for("query").encode(long))
    same(ref.encode_query(long), ours.encode_query(long), "query past 24 tokens")
    same(ref.encode_document(long), ours.encode_document(long), "document past 48 tokens")
    ref.max_seq_length = ours.max_seq_length = 16
    try:
        same(ref.encode_query(long), ours.encode_query(long), "query at 16")
        same(ref.encode_document(long), ours.encode_document(long), "document at 16")
    finally:
        ref.max_seq_length = 48


@SLOW
def test_set_task_and_config(export_bundle, reference):
    """The route travels in the one configuration: set_task, encode(config=...), encode_rows (the server's path)."""
    ref = reference("router-mapped")
    ours = SentenceTransformer(_bundle(export_bundle, "router-mapped"))
    ours.set_task("query")
    assert ours.config.task == "query"
    same(ref.encode(TEXTS, task="query"), ours.encode(TEXTS), "set_task('query')")
    rows = ours.tokenizer.encode(TEXTS)
    same(ref.encode(TEXTS, task="query"), ours.encode_rows(rows, ours.config), "encode_rows with the config")
    same(ref.encode(TEXTS, task="d"), ours.encode(TEXTS, config=ours.config.replace(task="d")), "config task=d")
    with pytest.raises(InputValidationError, match="task='q'"):
        ours.set_task("nope")
    assert ours.config.task == "query"


@SLOW
def test_router_bundle_layout_and_figures(export_bundle):
    root = _bundle(export_bundle, "router-dense")
    manifest = json.loads((root / "st_runtime.json").read_text())
    router = manifest["embedding"]["router"]
    assert router["default_route"] == "document" and list(router["routes"]) == ["query", "document"]
    query = router["routes"]["query"]
    assert set(query["variants"]) == {"onnx", "openvino"}
    assert (root / "routes/query/model.onnx").is_file() and (root / "routes/query/openvino_model.xml").is_file()
    for spec in query["variants"].values():
        assert spec["accuracy"]["max_abs"] <= ATOL and spec["accuracy"]["task"] == "query"
    assert manifest["variants"]["onnx"]["accuracy"]["routes"]["document"]["max_abs"] <= ATOL


@SLOW
@pytest.mark.parametrize("variant", ["onnx", "openvino"])
def test_sparse_two_transformer_routes(variant, export_bundle, reference):
    ref = reference("splade-2route")
    ours = SparseEncoder(_bundle(export_bundle, "splade-2route"), variant=variant)
    ref.encode("x")
    assert ours.routes == ["query", "document"] and ours.max_seq_length == ref.max_seq_length
    for batch_size in (1, 7, 32):
        same(ref.encode(TEXTS, batch_size=batch_size), ours.encode(TEXTS, batch_size=batch_size), "encode")
        same(ref.encode_query(TEXTS, batch_size=batch_size), ours.encode_query(TEXTS, batch_size=batch_size),
             "encode_query")
        same(ref.encode_document(TEXTS, batch_size=batch_size), ours.encode_document(TEXTS, batch_size=batch_size),
             "encode_document")
    for k in (3, 20):
        same(ref.encode_query(TEXTS, max_active_dims=k), ours.encode_query(TEXTS, max_active_dims=k), f"k={k}")
    assert abs(ours.encode_query(TEXTS) - ours.encode_document(TEXTS)).max() > 0
    with pytest.raises(InputValidationError, match="task='query'"):
        ours.encode(TEXTS, task="nope")


@SLOW
def test_cli_embed_serve_validate(export_bundle, reference, tmp_path, capsys):
    """`validate` re-proves every route; `embed --task` and `serve --task` take the route through the model's one
    configuration (embed also adds the task's prompt, as encode_query does)."""
    pytest.importorskip("starlette")
    pytest.importorskip("httpx")
    pq = pytest.importorskip("pyarrow.parquet")
    from starlette.testclient import TestClient

    from st_runtime.cli import build_parser, main
    from st_runtime.serving.app import ServeConfig, create_app
    from st_runtime.serving.cli import load_models

    ref = reference("router-dense")
    bundle = _bundle(export_bundle, "router-dense")
    assert main(["validate", str(bundle), "--variants", "onnx"]) == 0
    out = capsys.readouterr().out
    assert "route 'query' (task='query') parity OK" in out and "route 'document'" in out

    corpus_file = tmp_path / "c.txt"
    corpus_file.write_text("\n".join(t for t in TEXTS if t) + "\n")
    texts = [t for t in TEXTS if t]
    assert main(["embed", str(bundle), str(corpus_file), str(tmp_path / "q.parquet"), "--task", "query"]) == 0
    rows = np.asarray(pq.read_table(str(tmp_path / "q.parquet")).column("embedding").to_pylist(), np.float32)
    same(ref.encode_query(texts), rows, "embed --task query")
    assert main(["embed", str(bundle), str(corpus_file), str(tmp_path / "x.parquet"), "--task", "nope"]) == 2
    assert "No route found for task 'nope'" in capsys.readouterr().err

    served = load_models(build_parser().parse_args(["serve", f"q={bundle}", f"d={bundle}", "--task", "q=query"]))
    assert served["q"].config.task == "query" and served["d"].config.task is None
    with TestClient(create_app(served, ServeConfig())) as client:
        got = client.post("/embed", json={"inputs": texts, "model": "q", "prompt_name": "query", "truncate": True})
        assert got.status_code == 200, got.text
        same(ref.encode_query(texts), np.asarray(got.json(), np.float32), "serve --task query")
        got = client.post("/embed", json={"inputs": texts, "model": "d", "truncate": True})
        same(ref.encode(texts), np.asarray(got.json(), np.float32), "serve, default route")
        long = corpus.passages(1, seed=305, min_words=30, max_words=35)  # ~40 tokens: past the query route's 24
        assert client.post("/embed", json={"inputs": long, "model": "q", "truncate": False}).status_code == 413
        assert client.post("/embed", json={"inputs": long, "model": "d", "truncate": False}).status_code == 200


@SLOW
def test_evaluate_ir_takes_the_routes(export_bundle, reference):
    """The torch-free IR evaluator embeds queries through the query route and the corpus through the document
    route (encode_query / encode_document), as sentence-transformers' evaluator does: the same metrics."""
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator as STEval

    from st_runtime.evaluation import InformationRetrievalEvaluator

    queries = {f"q{i}": t for i, t in enumerate(corpus.queries(12, seed=311))}
    docs = {f"d{i}": t for i, t in enumerate(corpus.passages(30, seed=312))}
    qrels = {f"q{i}": {f"d{(3 * i) % 30}", f"d{(7 * i + 1) % 30}"} for i in range(12)}
    ref = reference("router-dense")
    ours = SentenceTransformer(_bundle(export_bundle, "router-dense"))
    theirs = STEval(queries, docs, qrels, write_csv=False)(ref)
    got = InformationRetrievalEvaluator(queries, docs, qrels, write_csv=False)(ours)
    assert set(got) == set(theirs)
    assert all(abs(got[k] - theirs[k]) <= 1e-12 for k in theirs), {k: (got[k], theirs[k]) for k in theirs}
