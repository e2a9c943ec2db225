"""`st-runtime embed` for sparse and multi-vector bundles: Parquet rows equal to encode, one configuration recorded,
resumable, nothing half-written, wrong settings refused."""

import json

import numpy as np
import pytest

from st_runtime import InputValidationError, MultiVectorEncoder, SparseEncoder, corpus
from st_runtime.cli import main
from st_runtime.corpus_embed import embed_file
from st_runtime.corpus_embed.local import partial_dir

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
TEXTS = corpus.queries(40, seed=91) + corpus.passages(20, seed=92) + ["", "Hello, world! Is it?"]


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def splade(export_bundle):
    return SparseEncoder(export_bundle("splade-max", ("openvino",)))


@pytest.fixture(scope="module")
def router(export_bundle):
    return SparseEncoder(export_bundle("splade-router", ("openvino",)))


@pytest.fixture(scope="module")
def multivec(export_bundle):
    return MultiVectorEncoder(export_bundle("multivec-dense", ("openvino",)))


def _assert_sparse_rows(table, expected):
    assert table.schema.field("indices").type == pa.list_(pa.int32())
    assert table.schema.field("values").type == pa.list_(pa.float32())
    expected.sort_indices()
    assert table.num_rows == expected.shape[0]
    for row, (indices, values) in enumerate(zip(table.column("indices").to_pylist(),
                                                table.column("values").to_pylist())):
        start, stop = expected.indptr[row], expected.indptr[row + 1]
        assert indices == expected.indices[start:stop].tolist(), row
        assert np.abs(np.array(values, np.float32) - expected.data[start:stop]).max(initial=0) <= 1e-6, row


def test_sparse_to_parquet_matches_encode(splade, text_file, tmp_path):
    out = embed_file(splade, text_file, tmp_path / "s.parquet", chunk_size=16, prompt_name="query",
                     max_active_dims=20, progress=False)
    table = pq.read_table(str(out))
    assert table.column("id").to_pylist() == list(range(len(TEXTS)))
    _assert_sparse_rows(table, splade.encode(TEXTS, prompt_name="query", max_active_dims=20))
    assert max(len(r) for r in table.column("indices").to_pylist()) == 20
    config = json.loads(table.schema.metadata[b"st_runtime.config"])
    assert config["max_active_dims"] == 20 and config["prompts"] == splade.prompts and config["task"] is None
    assert json.loads(table.schema.metadata[b"st_runtime.source"])["kind"] == "sparse-encoder"
    assert not partial_dir(out).exists()


@pytest.mark.parametrize("task", ["query", "document"])
def test_router_routes(router, text_file, tmp_path, task):
    out = embed_file(router, text_file, tmp_path / f"{task}.parquet", chunk_size=25, task=task, progress=False)
    _assert_sparse_rows(pq.read_table(str(out)), router.encode(TEXTS, task=task))


def test_multi_vector_to_parquet_matches_encode_document(multivec, text_file, tmp_path):
    out = embed_file(multivec, text_file, tmp_path / "m.parquet", chunk_size=16, task="document", progress=False)
    table = pq.read_table(str(out))
    column = table.schema.field("embedding").type
    assert column == pa.list_(pa.list_(pa.float32(), multivec.get_embedding_dimension()))
    expected = multivec.encode_document(TEXTS)  # the "[D] " prompt, document length and punctuation skiplist
    got = table.column("embedding").to_pylist()
    assert table.column("n_tokens").to_pylist() == [len(e) for e in expected]
    for row, (ours, ref) in enumerate(zip(got, expected)):
        assert np.asarray(ours, np.float32).reshape(ref.shape).shape == ref.shape, row
        if ref.size:
            assert np.abs(np.asarray(ours, np.float32) - ref).max() <= 1e-6, row
    assert json.loads(table.schema.metadata[b"st_runtime.config"])["task"] == "document"


def test_resume_keeps_one_configuration(splade, text_file, tmp_path):
    out = tmp_path / "r.parquet"
    assert embed_file(splade, text_file, out, chunk_size=16, progress=False, stop_after_chunks=2) is None
    assert not out.exists() and len(list(partial_dir(out).glob("part-*.parquet"))) == 2
    with pytest.raises(InputValidationError, match="--restart"):
        embed_file(splade, text_file, out, chunk_size=16, max_active_dims=8, progress=False)
    embed_file(splade, text_file, out, chunk_size=16, progress=False)
    _assert_sparse_rows(pq.read_table(str(out)), splade.encode(TEXTS))


@pytest.mark.parametrize("kwargs, match", [
    ({"output": "x.npy"}, "Parquet"),
    ({"precision": "int8"}, "float32"),
    ({"truncate_dim": 8}, "truncate-dim"),
    ({"normalize": True}, "normalize"),
    ({"max_active_dims": 0}, "max_active_dims"),
])
def test_sparse_refusals(splade, text_file, tmp_path, kwargs, match):
    output = tmp_path / kwargs.pop("output", "x.parquet")
    with pytest.raises(InputValidationError, match=match):
        embed_file(splade, text_file, output, progress=False, **kwargs)
    assert not output.exists() and not partial_dir(output).exists()


def test_unknown_route_and_multi_vector_refusals(router, multivec, text_file, tmp_path):
    with pytest.raises(InputValidationError, match="No route found for task 'nope'"):
        embed_file(router, text_file, tmp_path / "x.parquet", task="nope", progress=False)
    with pytest.raises(InputValidationError, match="'query' or 'document'"):
        embed_file(multivec, text_file, tmp_path / "x.parquet", task="nope", progress=False)
    with pytest.raises(InputValidationError, match="sparse bundles only"):
        embed_file(multivec, text_file, tmp_path / "x.parquet", max_active_dims=4, progress=False)


def test_cli_opens_the_bundle_kind(export_bundle, text_file, tmp_path, capsys, router):
    out = tmp_path / "cli.parquet"
    bundle = export_bundle("splade-router", ("openvino",))
    assert main(["embed", str(bundle), str(text_file), str(out), "--task", "query", "--chunk-size", "30"]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    _assert_sparse_rows(pq.read_table(str(out)), router.encode_query(TEXTS))
    assert main(["embed", str(bundle), str(text_file), str(tmp_path / "long.parquet"), "--long-text", "chunk"]) == 2
    assert "--long-text chunk applies to dense bundles" in capsys.readouterr().err


@pytest.mark.slow
def test_ray_matches_local_for_sparse_and_multi_vector(router, multivec, text_file, tmp_path):
    """`embed --ray` writes the same rows and the same columns as the local job, for a sparse Router route and a
    multi-vector document side (one configuration built on the driver, shipped to the actors whole)."""
    pytest.importorskip("ray", reason="embed --ray needs the ray extra")
    import ray

    from st_runtime.corpus_embed.ray_job import embed_file_ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        for model, task, extra in ((router, "query", {"max_active_dims": 6}), (multivec, "document", {})):
            local = embed_file(model, text_file, tmp_path / f"local-{task}.parquet", chunk_size=16, task=task,
                               progress=False, **extra)
            remote = embed_file_ray(model.bundle.root, text_file, tmp_path / f"ray-{task}.parquet", workers=1,
                                    rows_per_batch=16, task=task, ship_bundle=True, **extra)
            a, b = pq.read_table(str(local)), pq.read_table(str(remote))
            assert a.column_names == b.column_names
            assert a.to_pylist() == b.to_pylist()
    finally:
        ray.shutdown()


def test_multi_vector_config_names_its_similarity(multivec, text_file, tmp_path):
    """The configuration stored with the rows names the similarity sentence-transformers reports (maxsim)."""
    out = embed_file(multivec, text_file, tmp_path / "m.parquet", task="query", progress=False)
    config = json.loads(pq.read_table(str(out)).schema.metadata[b"st_runtime.config"])
    assert config["similarity_fn_name"] == multivec.similarity_fn_name == "maxsim"
