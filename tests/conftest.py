"""Shared pytest settings: hypothesis profile for CPU-only, time-bounded runs."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("rnngap", deadline=None, max_examples=25,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "rnngap"))


import pytest


@pytest.fixture
def one_thread():
    """Tiny models: one intra-op torch thread avoids oversubscribing a shared machine (used by
    the training and evaluation tests through ``pytestmark``)."""
    import torch
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
