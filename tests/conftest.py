"""Shared test fixtures, and an opt-in record of each test's CPU time.

``MTRL_TEST_CPU_TIMES=<file>`` appends one line per test, ``<cpu seconds>\\t<wall seconds>\\t<node id>``: CPU time
of the pytest process plus that of the child processes it waited for (CLI tests run ``python -m ...``), setup,
call and teardown together. On a shared, loaded machine wall times say little; CPU times are what a quiet
machine would spend (the tests run one torch thread), so they are what the slow/fast split is based on.
"""

from __future__ import annotations

import os
import resource
import time

import pytest
import torch

_CPU_TIMES = os.environ.get("MTRL_TEST_CPU_TIMES")


def _cpu() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


if _CPU_TIMES:

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(item, nextitem):  # noqa: ARG001
        c0, t0 = _cpu(), time.perf_counter()
        yield
        with open(_CPU_TIMES, "a") as f:
            f.write(f"{_cpu() - c0:.2f}\t{time.perf_counter() - t0:.2f}\t{item.nodeid}\n")


@pytest.fixture
def one_thread():
    """Tiny models on a shared 2-core machine: one torch thread is faster and repeatable; restored afterwards.
    Use it module-wide with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)
