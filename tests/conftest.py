"""Shared pytest set-up."""

from hypothesis import settings

# Property tests check values, not speed: no per-example deadline (a loaded CI machine made one flaky).
settings.register_profile("nmllm", deadline=None)
settings.load_profile("nmllm")
