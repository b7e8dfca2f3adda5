"""Pre-signed, expiring download URLs, like the object-store links the real API hands out.

The signature is an HMAC-SHA256 under a secret drawn when the server starts, over the request
id, the batch id and the expiry. Nothing is stored per URL: any URL the server issued is
valid until its expiry, every status call can issue fresh ones, and a URL edited by hand (or
one request's signature pasted onto another's path) fails verification.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from urllib.parse import urlencode


class SignatureError(Exception):
    """A download URL that must be refused; ``expired`` tells the two reasons apart."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.expired = expired


class URLSigner:
    """Issues and checks ``expires=...&signature=...`` query strings."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret if secret is not None else secrets.token_bytes(32)

    def _digest(self, request_id: str, batch_id: str, expires: str) -> str:
        message = f"{request_id}\n{batch_id}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def query(self, request_id: str, batch_id: int | str, ttl: float, *, now: float | None = None) -> str:
        """The query string of a URL valid for ``ttl`` seconds from ``now``."""
        expires = f"{(time.time() if now is None else now) + ttl:.3f}"
        signature = self._digest(request_id, str(batch_id), expires)
        return urlencode({"expires": expires, "signature": signature})

    def verify(
        self,
        request_id: str,
        batch_id: int | str,
        expires: str | None,
        signature: str | None,
        *,
        now: float | None = None,
    ) -> None:
        """Raise :class:`SignatureError` unless the URL was issued here and has not expired."""
        if not expires or not signature:
            raise SignatureError("Query-string authentication requires the expires and signature parameters")
        expected = self._digest(request_id, str(batch_id), expires)
        if not hmac.compare_digest(expected, signature):
            raise SignatureError(
                "The request signature we calculated does not match the signature you provided"
            )
        try:
            deadline = float(expires)
        except ValueError:
            raise SignatureError("Invalid expires parameter") from None
        if not math.isfinite(deadline) or (time.time() if now is None else now) >= deadline:
            raise SignatureError("Request has expired", expired=True)
