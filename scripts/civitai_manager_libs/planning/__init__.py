"""Planning: from a listing to download tasks.

`downloader` (the spec's ImageDownloader, re-exported by the root `image_downloader` facade)
over `listing_planner` (page -> tasks), `crawl_state` (pages, checkpoints), `task_registry`,
`template_context` (names for path templates), `callback_dispatcher`, `listing_request` (what a
listing asks), `item_filter` (client-side filters).
"""
