"""Shared pytest configuration: hypothesis profiles.

``HYPOTHESIS_PROFILE=dev pytest`` runs the same properties with more examples and longer
stateful runs; the default ``ci`` profile keeps the whole suite within a few minutes on a
small machine.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_SUPPRESS = [HealthCheck.too_slow, HealthCheck.data_too_large]

settings.register_profile(
    "ci",
    deadline=None,
    max_examples=60,
    stateful_step_count=40,
    print_blob=True,
    suppress_health_check=_SUPPRESS,
)
settings.register_profile(
    "dev",
    deadline=None,
    max_examples=400,
    stateful_step_count=80,
    print_blob=True,
    suppress_health_check=_SUPPRESS,
)
settings.register_profile(
    "quick",
    deadline=None,
    max_examples=10,
    stateful_step_count=15,
    print_blob=True,
    suppress_health_check=_SUPPRESS,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
