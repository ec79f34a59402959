"""Utilities shared by every layer: logging set-up and secret redaction."""
