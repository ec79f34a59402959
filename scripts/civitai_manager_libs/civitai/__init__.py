"""Civitai: the REST API and its query language.

`api` (CivitaiAPI: cursor listing, model / version / image look-ups) over `pages` (the one
listing loop), `drift` (what Civitai answered differently), `doctor` (the doctor's questions),
`trpc` (the web API), `web_listing` (collections, posts, tags...), `image_query` (request
parameters, cursors), `image_items` (raw item -> ImageItem), `image_urls` (original / sized URLs),
`nsfw` (levels, masks, exact filter), `image_batch` (images by id, in batches), `filters` (the
user's filters), `pages_ahead` (a page asked beside a look-up); `query` parses what a user types
(ids, URLs) into a Target and `target_check` asks whether it exists.
"""
