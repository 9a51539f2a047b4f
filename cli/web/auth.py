"""Who may act: an operator signs in with the admin token and gets a signed session cookie.

Stateless: the cookie carries the operator's name and expiry, signed with a key derived from
the admin token (changing the token signs everyone out); the CSRF token is derived from the
cookie, so a form posted from another site, which cannot read the page, cannot carry it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable
from datetime import datetime

from starlette.requests import Request

COOKIE = "livedash_operator"
SESSION_SECONDS = 8 * 3600
_NAME = re.compile(r"^[\w .@-]{1,64}$")


class Auth:
    def __init__(self, admin_token: str | None, clock: Callable[[], datetime]) -> None:
        self.enabled = bool(admin_token)
        self._token = (admin_token or "").encode()
        self._key = hmac.new(self._token, b"livedash-web-session", hashlib.sha256).digest()
        self._clock = clock

    def token_matches(self, given: str) -> bool:
        return self.enabled and hmac.compare_digest(given.encode(), self._token)

    @staticmethod
    def valid_name(name: str) -> bool:
        return bool(_NAME.match(name))

    def issue(self, name: str) -> str:
        """The cookie value for an operator who just gave the right token."""
        encoded = base64.urlsafe_b64encode(name.encode()).decode()
        expires = int(self._clock().timestamp()) + SESSION_SECONDS
        body = f"{encoded}.{expires}"
        return f"{body}.{self._sign(body)}"

    def operator(self, request: Request) -> str | None:
        """The signed-in operator's name, or None (no cookie, bad signature, expired)."""
        if not self.enabled:
            return None
        value = request.cookies.get(COOKIE, "")
        parts = value.split(".")
        if len(parts) != 3:
            return None
        encoded, expires, signature = parts
        if not hmac.compare_digest(signature, self._sign(f"{encoded}.{expires}")):
            return None
        if not expires.isdigit() or int(expires) < self._clock().timestamp():
            return None
        try:
            return base64.urlsafe_b64decode(encoded.encode()).decode()
        except (ValueError, UnicodeDecodeError):
            return None

    def csrf(self, request: Request) -> str:
        """The token the operator's forms carry ("" when nobody is signed in)."""
        value = request.cookies.get(COOKIE, "")
        return self._sign(f"csrf:{value}") if self.operator(request) else ""

    def csrf_ok(self, request: Request, given: str) -> bool:
        expected = self.csrf(request)
        return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())

    def _sign(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()
