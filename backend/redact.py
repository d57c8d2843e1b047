"""Secrets out of log lines: every `token=…` and `Bearer …` becomes `[redacted]`.

URLs carry tokens where browsers cannot send headers (`?token=` on websockets and links),
and uvicorn logs each request line; a log file must not be a key to the server.
"""

from __future__ import annotations

import re

_SECRETS = re.compile(r"(?i)(token=|bearer\s+)[^\s&\"',;]+")
REDACTED = "[redacted]"


def redact(text: str) -> str:
    return _SECRETS.sub(lambda m: m.group(1) + REDACTED, text)
