"""The batch sizer: grows while batches are fast, shrinks to the target when one is slow,
stays within 1 and its ceiling, and stays put without a target."""

from __future__ import annotations

from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from worker.batchsize import BatchSizer, LearnedSizes
from worker.batchsteps import sizer_for


def test_fast_full_batches_double_up_to_the_ceiling() -> None:
    sizer = BatchSizer(500, ceiling=3000, target_seconds=0.5)
    sizes = [sizer.observe(sizer.size, 0.01) for _ in range(4)]
    assert sizes == [1000, 2000, 3000, 3000]


def test_a_slow_batch_shrinks_to_what_fits_in_the_target() -> None:
    sizer = BatchSizer(4000, ceiling=50_000, target_seconds=0.5)
    assert sizer.observe(4000, 2.0) == 1000  # 2,000 rows/s × 0.5 s
    assert sizer.observe(1000, 0.4) == 1000  # within the target, over half: kept


def test_a_short_last_page_says_nothing_about_a_full_batch() -> None:
    sizer = BatchSizer(500, ceiling=50_000, target_seconds=0.5)
    assert sizer.observe(12, 0.001) == 500


def test_without_a_target_the_size_never_changes() -> None:
    sizer = BatchSizer(3, ceiling=50_000)
    assert [sizer.observe(3, s) for s in (0.0001, 100.0, 0.2)] == [3, 3, 3]


def test_the_start_is_kept_within_the_ceiling() -> None:
    assert BatchSizer(80_000, ceiling=10_000, target_seconds=1.0).size == 10_000


@given(
    st.integers(1, 50_000),
    st.integers(1, 100_000),
    st.floats(0.01, 60.0),
    st.lists(st.tuples(st.integers(0, 100_000), st.floats(0.0, 1000.0)), max_size=30),
)
def test_the_size_stays_within_bounds_and_a_slow_batch_never_grows_it(
    start: int, ceiling: int, target: float, batches: list[tuple[int, float]]
) -> None:
    sizer = BatchSizer(start, ceiling=ceiling, target_seconds=target)
    for rows, seconds in batches:
        before = sizer.size
        after = sizer.observe(rows, seconds)
        assert 1 <= after <= ceiling
        if seconds > target:
            assert after <= before
            if rows and after > 1:  # what fits in the target at the measured rate
                assert after * seconds / rows <= target * (1 + 1e-9)
        if seconds >= target / 2:
            assert after <= before


def test_learned_sizes_are_kept_per_key_and_start_where_the_last_run_left_off() -> None:
    """A sizer told to keep its sizes hands them to the next run under the same key only; a
    slow batch's shrink is kept too (the next run starts small again)."""
    learned = LearnedSizes()
    first = BatchSizer(2, ceiling=100, target_seconds=1.0, keep=learned.keeper("db|child"))
    first.observe(2, 0.1)
    first.observe(4, 0.1)
    assert learned.start("db|child", 2) == 8
    assert learned.start("db|note", 2) == 2  # another table (or database) learns on its own
    second = BatchSizer(learned.start("db|child", 2), 100, 1.0, learned.keeper("db|child"))
    second.observe(8, 4.0)  # four times the target: 2 rows fit
    assert learned.start("db|child", 2) == 2


def test_a_failed_batch_forgets_what_was_learned() -> None:
    """A batch that failed (a timeout) took an unknown time: the next run starts at the
    mapping's batch_size again, not at the size that may have timed out."""
    learned = LearnedSizes()
    sizer = BatchSizer(2, ceiling=100, target_seconds=1.0, keep=learned.keeper("db|child"))
    sizer.observe(2, 0.1)
    assert learned.start("db|child", 2) == 4
    sizer.failed()
    assert learned.start("db|child", 2) == 2


def test_another_products_mapping_of_the_same_table_learns_on_its_own() -> None:
    """Two products whose mappings reach one database and table (other dependents, other
    row weights) do not share a learned size."""
    runner = SimpleNamespace(batch_size=None, learned_sizes=LearnedSizes())
    where = ("engine", "child", "delete")
    first = SimpleNamespace(product="kidsapp", batch_size=2, batch_seconds=1.0)
    sizer = sizer_for(runner, first, 100, where)  # type: ignore[arg-type]
    sizer.observe(2, 0.1)
    assert sizer_for(runner, first, 100, where).size == 4  # type: ignore[arg-type]
    other = SimpleNamespace(product="schoolapp", batch_size=2, batch_seconds=1.0)
    assert sizer_for(runner, other, 100, where).size == 2  # type: ignore[arg-type]
