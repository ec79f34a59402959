"""A local Civitai for tests, the offline demo and the benchmark.

``FakeCivitai`` runs an API host and an image host on 127.0.0.1 serving a deterministic
``Dataset`` (``Dataset.default()`` or ``Dataset.generate(n_images, image_kb)``), with knobs for
latency, bandwidth and faults. See docs/DESIGN.md ("fake_civitai", "fake_civitai knobs").

Modules: ``dataset`` (types, look-ups, lazy bytes), ``builders`` (the two datasets),
``meta_shapes`` (the ``meta`` variants), ``media`` (bytes), ``listing`` (``/api/v1/images``),
``api`` (models, versions, redirects), ``models_api`` (model files), ``imagehost`` (image URLs),
``storage`` (model file host), ``trpc`` (the web API), ``entities``, ``response``, ``faults``,
``server``, ``__main__``.

Choices worth knowing when writing tests against it:
- ``period`` filters count back from the dataset's fixed "now" (``dataset.now_ms``), not the clock,
  so results never change; the five newest images are less than a day old.
- Cursors look like Civitai's (``"<sort value>|<createdAt ms>"``) and stay valid for the life of
  the dataset; a cursor that is not ``int|int`` is a 400.
- Images embedded in ``/api/v1/models/{id}`` and ``/api/v1/model-versions/{id}`` carry an integer
  ``nsfwLevel`` (the browsing level 1/2/4/8/16) as the real endpoints do; the images endpoint sends
  the names ``None|Soft|Mature|X``.
- ``username`` matches case-insensitively. ``hidden`` images keep their data in ``FakeImage.meta``
  (a PNG original may still carry it) but the API always sends ``null`` for them.
- ``bandwidth`` paces each response separately; ``total_bandwidth`` is shared by all of them.
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
