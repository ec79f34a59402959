"""Engine: execution.

`pool` (bounded priority worker pool, cancellation), `task` (ImageDownloadTask and its
statuses), `task_runner` (one task: fetch -> duplicate policy -> metadata -> thumbnail ->
archive), `duplicates`, `failures` (what went wrong, in words).
"""
