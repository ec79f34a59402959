"""CLI shell: `python main.py download | tasks | retry-failed`.

`command` (entry point) over `args`, `target`, `service`, `run`, `progress`, `signals`,
`report`, `tasks`.
"""
