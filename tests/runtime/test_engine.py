"""Batch planning: order, size limits, token budget smaller than one input."""

import numpy as np

from st_runtime.engine import plan_batches


def test_batches_cover_every_index_once_longest_first():
    lengths = [5, 50, 7, 12, 50, 1]
    batches = plan_batches(lengths, batch_size=4)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)
    assert all(len(b) <= 4 for b in batches)


def test_token_budget_smaller_than_one_input_terminates():
    batches = plan_batches([1000, 900, 10], batch_size=32, max_tokens=100)
    assert [len(b) for b in batches] == [1, 1, 1]


def test_token_budget_packs_short_inputs():
    batches = plan_batches([10] * 20, batch_size=32, max_tokens=100)
    assert [len(b) for b in batches] == [10, 10]


def test_empty():
    assert plan_batches([], batch_size=8) == []
