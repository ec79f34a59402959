"""A local Civitai for tests, the offline demo and the benchmark.

``FakeCivitai`` runs an API host and an image host on 127.0.0.1 serving a deterministic
``Dataset`` (``Dataset.default()`` or ``Dataset.generate(n_images, image_kb)``), with knobs for
latency, bandwidth and faults. See docs/DESIGN.md ("fake_civitai", "fake_civitai knobs").
"""

from .dataset import Creator, Dataset, FakeImage, FakeModel, FakeVersion
from .faults import Faults
from .server import FakeCivitai, RequestRecord

__all__ = [
    "Creator",
    "Dataset",
    "FakeCivitai",
    "FakeImage",
    "FakeModel",
    "FakeVersion",
    "Faults",
    "RequestRecord",
]
