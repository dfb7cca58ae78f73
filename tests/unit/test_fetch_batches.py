"""Grouping a dispatch plan into fetch batches (worker/sources/schedule.py `batches`)."""

from __future__ import annotations

from worker.sources.schedule import batches


def test_due_times_within_the_span_share_a_batch_held_until_its_last_is_due() -> None:
    plan = [(1, 0.0), (2, 0.0), (3, 0.4), (4, 1.5), (5, 2.0), (6, 2.6), (7, 9.0)]
    assert batches(plan, size=50, span=1.0) == [
        ([1, 2, 3], 0.4),
        ([4, 5], 2.0),
        ([6], 2.6),  # 1.1 s after its batch's first: a batch of its own
        ([7], 9.0),
    ]


def test_a_batch_holds_at_most_size_sources_and_none_is_sent_early() -> None:
    plan = [(i, i / 100) for i in range(120)]
    out = batches(plan, size=50, span=5.0)
    assert [len(ids) for ids, _ in out] == [50, 50, 20]
    delays = dict(plan)
    for ids, countdown in out:
        assert all(delays[i] <= countdown <= delays[i] + 5.0 for i in ids)
    assert sorted(i for ids, _ in out for i in ids) == list(range(120))


def test_a_zero_span_batches_only_sources_due_at_the_same_time() -> None:
    assert batches([(1, 0.0), (2, 0.0), (3, 0.5)], size=50, span=0.0) == [([1, 2], 0.0), ([3], 0.5)]
    assert batches([], size=50, span=1.0) == []
