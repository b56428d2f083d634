"""A module fixture for tests that train on the CPU: one intra-op thread."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """On a small, shared CPU, OpenMP's two spinning threads made these steps 5-20× slower than one thread
    (measured on the 2-core dev machine under load). Import it into a test module to apply it there."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
