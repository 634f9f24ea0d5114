"""Shared pytest settings: hypothesis profile for CPU-only, time-bounded runs."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("rnngap", deadline=None, max_examples=25,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "rnngap"))
