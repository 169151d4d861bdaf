"""API keys of ``colorize serve``: read once from a file, checked as ``Authorization: Bearer <key>``.

    keys = load_api_keys("/etc/colorize/keys")     # ValueError naming the file when unreadable or empty
    client = keys.identify(bearer_token(request.headers.get("authorization")))   # None: not a key

The file holds one key per line; blank lines and lines starting with ``#`` are skipped. A key is one word of
printable ASCII (what fits in an HTTP header). Keys are kept only as HMACs under a key drawn at random when the
process starts: a presented key is hashed the same way and compared with ``hmac.compare_digest`` against every
stored key (equal lengths, no early exit, so the time taken says neither which key matched nor how much of one did).
The identity returned for a match is a prefix of that HMAC, never the key: the per-client limits count by it, and
nothing here logs or formats a key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Iterable

_KEY = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces: a key fits in an Authorization header as it is
FILE_FORMAT = "one key per line; blank lines and lines starting with # are skipped"
#: ``WWW-Authenticate`` of a 401: no key sent, or a key that is not one of the server's (RFC 6750, section 3)
CHALLENGE = 'Bearer realm="colorize"'
CHALLENGE_INVALID = 'Bearer realm="colorize", error="invalid_token"'


class ApiKeys:
    """A set of API keys, stored as HMACs; ``identify`` says whether a presented key is one of them."""

    def __init__(self, keys: Iterable[str]):
        self._salt = os.urandom(32)
        self._digests = [self._digest(k) for k in dict.fromkeys(keys)]
        if not self._digests:
            raise ValueError("ApiKeys needs at least one key")

    def _digest(self, key: str) -> bytes:
        return hmac.new(self._salt, key.encode("utf-8", "surrogateescape"), hashlib.sha256).digest()

    def __len__(self) -> int:
        return len(self._digests)

    def __repr__(self) -> str:
        return f"ApiKeys({len(self)} keys)"

    def identify(self, presented: str | None) -> str | None:
        """``"key:<16 hex digits>"`` (an HMAC prefix of the key) when ``presented`` is one of the keys, else None."""
        if not presented:
            return None
        digest = self._digest(presented)
        match = b""
        for stored in self._digests:  # every key, every time
            if hmac.compare_digest(stored, digest):
                match = stored
        return "key:" + match[:8].hex() if match else None


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme case-insensitive), else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def load_api_keys(path: str | os.PathLike) -> ApiKeys:
    """The keys in ``path`` (``FILE_FORMAT``).

    Raises:
        ValueError: the file cannot be read, is not UTF-8, has a line that is not a key (named by its number,
            not its text), or holds no key.
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ValueError(f"API key file {os.fspath(path)!r}: cannot read it ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise ValueError(f"API key file {os.fspath(path)!r}: not UTF-8 text") from None
    keys = []
    for number, line in enumerate(text.splitlines(), 1):
        key = line.strip()
        if not key or key.startswith("#"):
            continue
        if not _KEY.fullmatch(key):
            raise ValueError(
                f"API key file {os.fspath(path)!r}, line {number}: not a key (a key is one word of printable ASCII, "
                f"no spaces; {FILE_FORMAT})"
            )
        keys.append(key)
    if not keys:
        raise ValueError(f"API key file {os.fspath(path)!r}: no keys in it ({FILE_FORMAT})")
    return ApiKeys(keys)
