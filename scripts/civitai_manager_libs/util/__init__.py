"""Utilities shared by every layer: `logging_setup` (logging set-up and secret redaction),
`json_depth` (nesting depth), `documents` (the one reader of untrusted documents), `url_gate` (the
one gate for URLs), `media_key` (a media file's key), `suggest` ("did you mean")."""
