"""Civitai Gallery: pull Civitai images down with their generation data.

The package is laid out as a pipeline (see docs/DESIGN.md):
transport (http_client) -> listing (civitai_api) -> planning (image_downloader)
-> execution (download_engine) -> post-processing (metadata, thumbnails) -> record (archive),
with thin shells over it (civitai_gallery_action for the Gradio tab, cli for the command line).
"""

__version__ = "0.1.0"
