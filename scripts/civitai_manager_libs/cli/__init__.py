"""CLI shell: `python main.py download | tasks | retry-failed`.

`command` (entry point) over `args`, `target`, `service`, `run`, `progress`, `signals`,
`report`, `tasks`; `export_cmd`, `list_cmd`, `resources_cmd`, `library_cmd`, `doctor_cmd` (the
other commands) over `shell`; `catalog` (every command, for `--help` and the dispatch).
"""
