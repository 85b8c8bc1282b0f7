"""Storage URLs in messages, logs and files: the password is never shown.

A URL is parsed with SQLAlchemy's own parser (``make_url``, the one the storage uses) when that is
unambiguous; otherwise (an unencoded ``@`` in the password, text that does not parse) everything
between ``://`` and the last ``@`` after the user name is masked, so a secret is over-masked rather
than shown. Secret query parameters (``?password=...``) are masked too."""

from __future__ import annotations

import re
from urllib.parse import unquote

_SCHEME = r"[a-zA-Z][a-zA-Z0-9+.-]*://"
_URL_IN_TEXT = re.compile(_SCHEME + r"\S*")
_ONE_URL = re.compile(_SCHEME)
_SECRET_KEY = re.compile(r"pass|pwd|secret|token|key|credential", re.IGNORECASE)
_SECRET_PARAM = re.compile(r"([?&][^=&?]*?(?:" + _SECRET_KEY.pattern + r")[^=&?]*=)([^&]*)", re.IGNORECASE)
_MASK = "***"


def mask_url(text: str) -> str:
    """Hide the password of a storage URL (``postgresql://u:***@host/db``), or of every URL in
    ``text`` (e.g. a study file or an error message)."""
    url = text.strip()
    if "\n" not in url and _ONE_URL.match(url):  # one URL: its password may hold spaces
        start = text.index(url)
        return text[:start] + _mask_one(url) + text[start + len(url) :]
    return _URL_IN_TEXT.sub(lambda m: _mask_one(m.group(0)), text)


def _mask_query(text: str) -> str:
    """Secret query parameters (``?password=...``, ``&sslkey=...``) of ``text`` masked."""
    return _SECRET_PARAM.sub(lambda m: m.group(1) + _MASK, text)


def _split(url: str) -> tuple[str, str, str]:
    """(scheme with ``://``, user information or "", the rest from the last ``@`` on)."""
    scheme, sep, rest = url.partition("://")
    at = rest.rfind("@")
    return scheme + sep, rest[:at] if at >= 0 else "", rest[at:] if at >= 0 else rest


def _mask_one(url: str) -> str:
    head, userinfo, rest = _split(url)
    user, colon, _ = userinfo.partition(":")
    if colon and "@" not in userinfo:  # one "@": the storage's own parser says whether there is a password
        try:
            from sqlalchemy.engine import make_url

            colon = ":" if make_url(url).password is not None else ""
        except Exception:  # not a database URL: mask what could be a password
            pass
    at = len(head) + len(userinfo)  # the last "@"; a secret query value running over it hides it all
    for m in _SECRET_PARAM.finditer(url):
        if m.start(2) <= at < m.end(2):
            return _mask_query(head + _MASK + url[m.end(2) :])
    return _mask_query(head + (user + ":" + _MASK if colon else userinfo) + rest)


def _secrets(url: str) -> set[str]:
    """The password and secret query values of ``url``, raw and decoded, as far as they can be found."""
    found: set[str] = set()
    userinfo = _split(url)[1]
    if ":" in userinfo:
        password = userinfo.partition(":")[2]
        found.add(password)
        found.update(password.split("@"))  # an unencoded "@": a driver may show the part after it as a host
    found.update(m.group(2) for m in _SECRET_PARAM.finditer(url))
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        found.add(parsed.password or "")
        for key, value in parsed.query.items():
            if _SECRET_KEY.search(key):
                found.update([value] if isinstance(value, str) else value)
    except Exception:  # unparsable: the structural guesses above remain
        pass
    return {s for secret in found for s in (secret, unquote(secret)) if s}


def scrub(text: str, url: str) -> str:
    """``text`` (e.g. an exception message) with every storage URL masked and the password of
    ``url`` removed wherever it appears on its own."""
    text = mask_url(text)
    for secret in sorted(_secrets(url), key=len, reverse=True):
        if len(secret) >= 3:  # shorter ones would mangle the text; the URL itself is masked above
            text = text.replace(secret, _MASK)
    return text
