"""`st-runtime embed`: files in, Parquet/.npy out, row for row equal to encode; resumable; same job on Ray."""

import json

import numpy as np
import pytest

from st_runtime import InputValidationError, SentenceTransformer, corpus
from st_runtime.corpus_embed import embed_file
from st_runtime.corpus_embed.local import partial_dir

pq = pytest.importorskip("pyarrow.parquet")
TEXTS = corpus.queries(150, seed=71) + corpus.passages(50, seed=72) + ["", "  "]


@pytest.fixture(scope="module")
def model(export_bundle):
    return SentenceTransformer(export_bundle("bert-mean"))


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    return path


def _read(path):
    table = pq.read_table(str(path))
    emb = np.stack(table.column("embedding").to_numpy(zero_copy_only=False))
    return table.column("id").to_numpy(), table.column("text_hash").to_pylist(), emb


def test_txt_to_parquet_matches_encode(model, text_file, tmp_path):
    out = embed_file(model, text_file, tmp_path / "out.parquet", chunk_size=64, progress=False)
    ids, hashes, emb = _read(out)
    assert ids.tolist() == list(range(len(TEXTS)))
    assert len(set(hashes)) == len(set(TEXTS))
    assert np.abs(emb - model.encode(TEXTS)).max() <= 1e-6
    assert not partial_dir(out).exists()


def test_jsonl_and_parquet_inputs_and_npy_output(model, tmp_path):
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text("\n".join(json.dumps({"body": t, "n": i}) for i, t in enumerate(TEXTS)))
    out = embed_file(model, jsonl, tmp_path / "c.npy", column="body", chunk_size=50, normalize=True, progress=False)
    assert np.abs(np.load(out) - model.encode(TEXTS, normalize_embeddings=True)).max() <= 1e-6
    import pyarrow as pa

    pq.write_table(pa.table({"body": TEXTS}), str(tmp_path / "c.parquet"))
    out = embed_file(model, tmp_path / "c.parquet", tmp_path / "p.parquet", column="body", precision="int8",
                     progress=False)
    assert _read(out)[2].dtype == np.int8
    with pytest.raises(InputValidationError, match="no column"):
        embed_file(model, tmp_path / "c.parquet", tmp_path / "q.parquet", column="text", progress=False)


def test_interrupted_run_resumes(model, text_file, tmp_path):
    out = tmp_path / "r.parquet"
    assert embed_file(model, text_file, out, chunk_size=40, stop_after_chunks=2, progress=False) is None
    assert not out.exists()
    parts = sorted(partial_dir(out).glob("part-*.parquet"))
    assert len(parts) == 2
    first_mtimes = [p.stat().st_mtime_ns for p in parts]
    calls = []
    original = model.encode
    model.encode = lambda texts, **kw: calls.append(len(texts)) or original(texts, **kw)
    try:
        embed_file(model, text_file, out, chunk_size=40, progress=False)
    finally:
        model.encode = original
    assert sum(calls) == len(TEXTS) - 80, "the two finished chunks must not be embedded again"
    assert [p.stat().st_mtime_ns for p in parts if p.exists()] in ([], first_mtimes)
    ids, _, emb = _read(out)
    assert ids.tolist() == list(range(len(TEXTS)))
    assert np.abs(emb - model.encode(TEXTS)).max() <= 1e-6


def test_changed_settings_do_not_mix(model, text_file, tmp_path):
    out = tmp_path / "m.parquet"
    embed_file(model, text_file, out, chunk_size=40, stop_after_chunks=1, progress=False)
    with pytest.raises(InputValidationError, match="--restart"):
        embed_file(model, text_file, out, chunk_size=40, normalize=True, progress=False)
    embed_file(model, text_file, out, chunk_size=40, normalize=True, restart=True, progress=False)
    assert np.abs(_read(out)[2] - model.encode(TEXTS, normalize_embeddings=True)).max() <= 1e-6


def test_cli(model, text_file, tmp_path, capsys):
    from st_runtime.cli import main

    assert main(["embed", str(model.bundle.root), str(text_file), str(tmp_path / "cli.parquet")]) == 0
    assert (tmp_path / "cli.parquet").exists()


@pytest.mark.slow
def test_ray_matches_local(model, tmp_path):
    pytest.importorskip("ray")
    from st_runtime.corpus_embed.ray_job import embed_file_ray

    texts = corpus.queries(2500, seed=73) + corpus.passages(500, seed=74)
    path = tmp_path / "big.txt"
    path.write_text("\n".join(texts) + "\n")
    local = embed_file(model, path, tmp_path / "local.parquet", chunk_size=512, progress=False)
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = embed_file_ray(model.bundle.root, path, tmp_path / "ray.parquet", workers=2, rows_per_batch=512,
                                ship_bundle=True)
    finally:
        ray.shutdown()
    ids_l, hashes_l, emb_l = _read(local)
    ids_r, hashes_r, emb_r = _read(remote)
    assert ids_l.tolist() == ids_r.tolist() == list(range(len(texts)))
    assert hashes_l == hashes_r
    assert np.abs(emb_l - emb_r).max() <= 1e-6


@pytest.mark.parametrize("precision", ["int8", "uint8"])
def test_int8_uses_one_scale_for_every_chunk_and_a_last_chunk_of_one(model, tmp_path, precision):
    """Before: ranges were computed per chunk (95 % of int8 values differed from encode(all)), and a last chunk of
    one text raised. Now: ranges from a calibration sample before the first chunk; 201 texts in chunks of 40."""
    texts = TEXTS[:201]
    path = tmp_path / "c.txt"
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    out = embed_file(model, path, tmp_path / "q.parquet", chunk_size=40, precision=precision, progress=False)
    rows = _read(out)[2]
    assert np.array_equal(rows, model.encode(texts, precision=precision))
    stored = json.loads(pq.read_schema(str(out)).metadata[b"st_runtime.config"])
    assert stored["precision"] == precision and len(stored["ranges"][0]) == rows.shape[1]


def test_int8_ranges_from_calibration_embeddings_file_and_reused_on_resume(model, text_file, tmp_path):
    calibration = model.encode(corpus.passages(300, seed=75))
    np.save(tmp_path / "calib.npy", calibration)
    out = tmp_path / "r.npy"
    kwargs = dict(chunk_size=40, precision="int8", calibration_embeddings=tmp_path / "calib.npy", progress=False)
    assert embed_file(model, text_file, out, stop_after_chunks=2, **kwargs) is None
    state = json.loads((partial_dir(out) / "state.json").read_text())
    assert np.allclose(state["ranges"], np.vstack((calibration.min(0), calibration.max(0))))
    (tmp_path / "calib.npy").unlink()  # resuming must reuse the stored ranges, not recompute them
    embed_file(model, text_file, out, **kwargs)
    expected = util_quantize(model.encode(TEXTS), calibration)
    assert np.array_equal(np.load(out), expected)
    assert json.loads((tmp_path / "r.npy.config.json").read_text())["ranges"] == state["ranges"]


def util_quantize(floats, calibration):
    from st_runtime import quantize_embeddings

    return quantize_embeddings(floats, "int8", calibration_embeddings=calibration)


def test_ray_job_fixes_int8_ranges_on_the_driver(model, text_file):
    """The Ray actors get one configuration with ranges fixed before the first batch (no Ray needed to check)."""
    from st_runtime.corpus_embed.ray_job import _with_fixed_ranges

    kwargs = _with_fixed_ranges(model.bundle.root, None, text_file, "text",
                                {"precision": "int8", "prompt_name": None, "truncate_dim": 16, "batch_size": 8})
    config = kwargs["config"]
    floats = model.encode(TEXTS, truncate_dim=16)
    assert np.allclose(np.asarray(config.ranges), np.vstack((floats.min(0), floats.max(0))), atol=1e-6)
    assert "precision" not in kwargs and "truncate_dim" not in kwargs
    assert _with_fixed_ranges(model.bundle.root, None, text_file, "text", {"precision": "float32"}) == \
        {"precision": "float32"}
