"""Store: what lands on disk and where.

`archive` (SQLite record of images, tasks, checkpoints), `paths` (file-name templates, joins
that never leave the output root), `disk_space` (free-space checks).
"""
