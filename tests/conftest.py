"""Shared test fixtures."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def one_thread():
    """Tiny models on a shared 2-core machine: one torch thread is faster and repeatable; restored afterwards.
    Use it module-wide with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)
