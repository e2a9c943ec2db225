"""Static-shape buckets: parsing, which bucket runs which rows, padding (torch-free, no backend)."""

import numpy as np
import pytest

from st_runtime import InputValidationError
from st_runtime.shape_buckets import Bucket, BucketedSession, pad_feeds, parse_shapes, plan

BUCKETS = parse_shapes("32x256, 1x64,8x128,8x128")


def test_parse_sorts_dedupes_and_refuses_malformed():
    assert BUCKETS == [Bucket(1, 64), Bucket(8, 128), Bucket(32, 256)]
    assert parse_shapes([[2, 16]]) == [Bucket(2, 16)]
    for bad in ("8x", "0x64", "ax64", "", "8*64", [[1.5, 2]]):
        with pytest.raises(InputValidationError, match="BATCHxLENGTH"):
            parse_shapes(bad)


@pytest.mark.parametrize("rows,length,expected", [
    (1, 10, [(0, 1, "1x64")]),
    (2, 10, [(0, 2, "8x128")]),          # 1x64 holds one row
    (1, 100, [(0, 1, "8x128")]),
    (9, 50, [(0, 9, "32x256")]),
    (40, 50, [(0, 32, "32x256"), (32, 40, "8x128")]),   # split, the rest in the smallest that fits
    (33, 200, [(0, 32, "32x256"), (32, 33, "32x256")]),
    (20, 129, [(0, 20, "32x256")]),
])
def test_plan_picks_smallest_fitting_bucket_and_splits(rows, length, expected):
    got = [(s.start, s.stop, b.label) for s, b in plan(rows, length, BUCKETS)]
    assert got == expected
    assert sum(s.stop - s.start for s, _ in plan(rows, length, BUCKETS)) == rows


def test_plan_refuses_wider_than_longest_bucket():
    with pytest.raises(InputValidationError, match="longest static shape"):
        plan(1, 257, BUCKETS)


def test_pad_rows_are_empty_and_columns_masked():
    feeds = {"input_ids": np.array([[101, 7, 102]]), "attention_mask": np.ones((1, 3), np.int64),
             "prompt_length": np.array([2])}
    right = pad_feeds(feeds, Bucket(2, 5), pad_id=9, left=False)
    assert right["input_ids"].tolist() == [[101, 7, 102, 9, 9], [9] * 5]
    assert right["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [0] * 5]
    assert right["prompt_length"].tolist() == [2]
    left = pad_feeds(feeds, Bucket(1, 5), pad_id=9, left=True)
    assert left["input_ids"].tolist() == [[9, 9, 101, 7, 102]]


class _Fixed:
    """A fake fixed-shape session: refuses other shapes, returns row sums and per-token values."""

    def __init__(self, bucket):
        self.bucket, self.input_names, self.output_names, self.description = bucket, ["input_ids", "attention_mask"], \
            ["sentence_embedding", "token_embeddings"], "fake"
        self.calls = 0

    def run(self, feeds, outputs=None):
        assert feeds["input_ids"].shape == (self.bucket.batch, self.bucket.length)
        self.calls += 1
        masked = feeds["input_ids"] * feeds["attention_mask"]
        return {"sentence_embedding": masked.sum(1, keepdims=True).astype(np.float32),
                "token_embeddings": masked[..., None].astype(np.float32)}


def test_bucketed_session_equals_unpadded_results():
    sessions = {b: _Fixed(b) for b in parse_shapes("1x4,3x8")}
    runner = BucketedSession(sessions, pad_id=0, sequence_outputs=["token_embeddings"])
    rng = np.random.default_rng(0)
    for rows, width in ((1, 3), (2, 4), (7, 6), (3, 8)):
        ids = rng.integers(1, 50, (rows, width))
        mask = np.ones_like(ids)
        out = runner.run({"input_ids": ids, "attention_mask": mask})
        assert out["sentence_embedding"].shape == (rows, 1)
        assert np.array_equal(out["sentence_embedding"][:, 0], ids.sum(1))
        assert np.array_equal(out["token_embeddings"][..., 0], ids)
    assert all(s.calls for s in sessions.values())
    assert runner.max_length == 8
