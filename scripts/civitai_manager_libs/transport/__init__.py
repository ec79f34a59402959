"""Transport: bytes on the wire.

One requests Session (`client`), retries as data (`retry_policy`), the shared per-host pause
(`host_gate`), file downloads to `.part` with resume and checks (`file_fetch`), content sniffing
(`media_sniff`), whole-file checks (`media_check`), API answers read as JSON or typed errors
(`api_response`) and a failure in words (`failure_reason`).
"""
