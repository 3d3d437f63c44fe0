"""A real local Ray: batches come back in order, and failed or lost tasks are retried."""

import os
import sys
from pathlib import Path

import pytest

from nas.parallel import InlineRunner, ParallelConfig, RayRunner, make_runner


def _fails_first_time(x: int, marker_dir: str) -> int:
    marker = Path(marker_dir) / f"{x}.tried"
    if not marker.exists():
        marker.touch()
        raise RuntimeError(f"transient failure on {x}")
    return 10 * x


def _worker_dies_first_time(x: int, marker_dir: str) -> int:
    marker = Path(marker_dir) / f"{x}.died"
    if not marker.exists():
        marker.touch()
        os._exit(1)  # the worker process is lost, not just the task
    return x + 1


@pytest.fixture(scope="module")
def ray_runner():
    # Ray workers cannot import this test module: ship its functions by value.
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    runner = RayRunner(ParallelConfig(workers=2, batch_size=2, max_retries=2))
    yield runner
    runner.close()


@pytest.mark.slow
def test_batches_are_evaluated_in_order(ray_runner, tmp_path):
    (tmp_path / "ok").mkdir()
    for x in range(7):
        (tmp_path / "ok" / f"{x}.tried").touch()  # no failures in this run
    assert ray_runner.map(_fails_first_time, range(7), str(tmp_path / "ok")) == [10 * x for x in range(7)]


@pytest.mark.slow
def test_a_failed_task_is_retried(ray_runner, tmp_path):
    assert ray_runner.map(_fails_first_time, [1, 2, 3], str(tmp_path)) == [10, 20, 30]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1.tried", "2.tried", "3.tried"]


@pytest.mark.slow
def test_a_lost_worker_does_not_lose_the_run(ray_runner, tmp_path):
    assert ray_runner.map(_worker_dies_first_time, [5, 6], str(tmp_path)) == [6, 7]


def test_cheap_work_stays_inline_without_a_cluster_address():
    assert isinstance(make_runner(ParallelConfig(workers=2), expensive=False), InlineRunner)
    assert isinstance(make_runner(None, expensive=True), InlineRunner)
    assert InlineRunner().map(lambda x, k: x * k, [1, 2], 3) == [3, 6]
