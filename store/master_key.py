"""The master key setting, parsed without loading the cryptography package (every CLI start
reads the settings)."""

from __future__ import annotations

import base64
import binascii

KEY_BYTES = 32


class MasterKeyError(RuntimeError):
    """The master key is missing, wrong, or not what this database was sealed with."""


def parse_master_key(text: str) -> bytes:
    """``LIVEDASH_MASTER_KEY``: 32 bytes, base64 (a key file holds the same text)."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise MasterKeyError("the master key is not base64") from None
    if len(key) != KEY_BYTES:
        raise MasterKeyError(f"the master key must be {KEY_BYTES} bytes (base64), not {len(key)}")
    return key
