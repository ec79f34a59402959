"""Fixtures of the fault suite (helpers live in cli_harness.py)."""

from __future__ import annotations

import pytest


@pytest.fixture
def generated_fake():
    """Factory: a started FakeCivitai over ``Dataset.generate(...)``; stopped after the test."""
    from scripts.civitai_manager_libs.fake_civitai import Dataset, FakeCivitai

    started = []

    def make(n_images: int, image_kb: int = 32, latency: float = 0.0, bandwidth=None, seed=0):
        fake = FakeCivitai(
            dataset=Dataset.generate(n_images=n_images, image_kb=image_kb, seed=seed),
            latency=latency,
            bandwidth=bandwidth,
        )
        fake.start()
        started.append(fake)
        return fake

    yield make
    for fake in started:
        fake.stop()
