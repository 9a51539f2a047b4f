"""URL rules shared by the company settings, the CSV reader and the transcript fetcher.

A password written into a URL (``https://user:pw@host/x.csv``) travels wherever the URL goes:
into events, projections, logs and error messages. These helpers find it, remove it for
display, and name a URL's origin (scheme, host, port), the unit credentials are scoped to.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

Origin = tuple[str, str, int]

DEFAULT_PORTS = {"http": 80, "https": 443}

_URL_WITH_USERINFO = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*:/{1,3})(?P<userinfo>[^/?#@\s]*@)",
)
"""A userinfo part anywhere in a text (also after a path normalised ``//`` into ``/``)."""

USERINFO_HINT = (
    "put the user name in --username and the password in an environment variable or file "
    "(--password-env / --password-file), not in the URL"
)


class UrlError(ValueError):
    """A URL we refuse; the message never repeats a password."""


def has_userinfo(text: str) -> bool:
    """Whether ``text`` holds a URL with a user name or password in it."""
    return _URL_WITH_USERINFO.search(text) is not None


def redact(text: str) -> str:
    """``text`` with every URL's userinfo replaced by ``***@``: safe to print or store."""
    return _URL_WITH_USERINFO.sub(lambda m: m.group("scheme") + "***@", text)


def refuse_userinfo(url: str, what: str = "URL") -> str:
    """Returns ``url`` unchanged, or raises UrlError (with the URL redacted) if it carries
    a user name or password."""
    if has_userinfo(url):
        raise UrlError(
            f"the {what} {redact(url)} has a user name or password in it; {USERINFO_HINT}"
        )
    return url


def origin_of(url: str) -> Origin | None:
    """(scheme, host, port) of an http(s) URL; None for anything else (paths, file URLs)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return (scheme, parts.hostname.lower().rstrip("."), port or DEFAULT_PORTS[scheme])


def format_origin(origin: Origin) -> str:
    scheme, host, port = origin
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}" if DEFAULT_PORTS[scheme] == port else f"{scheme}://{shown}:{port}"


def parse_origin(value: str) -> str:
    """An operator's ``--auth-scope`` entry in canonical form (``https://host[:port]``).

    Raises UrlError for anything that is not just a scheme, a host and maybe a port."""
    text = value.strip()
    refuse_userinfo(text, "auth scope")
    origin = origin_of(text)
    parts = urlsplit(text)
    if origin is None or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise UrlError(
            f"auth scope {text!r} is not an origin; give scheme, host and optional port, "
            "e.g. https://files.example.com or http://127.0.0.1:8080"
        )
    return format_origin(origin)


def without_userinfo(url: str) -> str:
    """The URL with any user name and password removed (for requests, not for display)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
