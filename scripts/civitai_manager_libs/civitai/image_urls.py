"""Civitai image URLs (id, original, sized): they live in ``transport/image_urls.py`` so that the
record (``metadata/``) names the original upload the same way the listing does."""

from ..transport.image_urls import image_id_from_url, original_url, sized_url

__all__ = ["image_id_from_url", "original_url", "sized_url"]
