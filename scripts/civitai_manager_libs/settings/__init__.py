"""Settings: every option's spec, validation, persistence and current value.

`state` holds the values and is the API (imported by everyone as the root `setting` facade);
`specs` is the table, `values` the validators, `file` the atomic JSON I/O, `cache_name` the
gallery cache file names.
"""
