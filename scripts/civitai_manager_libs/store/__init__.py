"""Store: what lands on disk and where.

`archive` (SQLite record of images, tasks, checkpoints: `archive_db`, `archive_schema`,
`archive_images`, `archive_tasks`, `archive_state`), `paths` (file-name templates, joins
that never leave the output root), `disk_space` (free-space checks), `confined` (the one write
path), `folder_lock` (one process per output folder), `resource_cache` (looked-up resources),
`library_index` / `library_query` (the search index).
"""
