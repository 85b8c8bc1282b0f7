"""Storage URLs in messages, logs and files: the password is never shown."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]+:)[^@\s]*(?P<at>@)")


def mask_url(url: str) -> str:
    """Hide the password of a storage URL (``postgresql://u:***@host/db``)."""
    return _PASSWORD.sub(r"\g<head>***\g<at>", url)


def scrub(text: str, url: str) -> str:
    """``text`` (e.g. an exception message) with every storage URL masked and the password of
    ``url`` removed wherever it appears on its own."""
    text = mask_url(text)
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    for secret in {password, unquote(password or "")} - {None, ""}:
        if len(str(secret)) >= 3:
            text = text.replace(str(secret), "***")
    return text
