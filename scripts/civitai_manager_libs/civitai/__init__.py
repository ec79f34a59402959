"""Civitai: the REST API and its query language.

`api` (CivitaiAPI: cursor listing, model / version / image look-ups) over `image_query` (request
parameters, cursors), `image_items` (raw item -> ImageItem), `image_urls` (original / sized URLs),
`nsfw` (levels, masks, exact filter); `query` parses what a user types (ids, URLs) into a Target.
"""
