"""Metadata: the generation data of a saved image.

`record` (the normalized JSON record and the sidecar writers), `generation` (generation
parameters out of an item's meta), `infotext` (A1111 infotext: write and parse), `embed` (text
embedded in PNG / JPEG / WebP), `thumbnails`, `resource_refs` (the resources an image names),
`resources_text` (sidecar lines, LoRA tags).
"""
