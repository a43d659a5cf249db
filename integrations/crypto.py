"""Encryption at rest for CRM credentials (DESIGN.md invariant 8).

Fernet (AES-128-CBC + HMAC-SHA256) from ``cryptography``. Each secret listed in
FIELD_ENCRYPTION_KEYS (default: SECRET_KEY) is stretched into a Fernet key with HKDF, so any
long random string works as a key. The first key encrypts; all of them decrypt, which is how
keys are rotated: put the new key first, run ``manage.py rotate_encryption_keys``, then drop
the old one.
"""

import base64
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


class DecryptionFailed(Exception):
    """Stored ciphertext matches none of the configured keys."""


def _fernet_key(secret: str) -> bytes:
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"crm-steward-credentials", info=b"fernet"
    ).derive(secret.encode())
    return base64.urlsafe_b64encode(derived)


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(_fernet_key(key)) for key in keys])


def _current() -> MultiFernet:
    return _fernet(tuple(settings.FIELD_ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    return _current().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    try:
        return _current().decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise DecryptionFailed(
            "Stored credentials cannot be decrypted with any key in FIELD_ENCRYPTION_KEYS; "
            "was a key removed before `manage.py rotate_encryption_keys` ran?"
        ) from None


def rotate(ciphertext: str) -> str:
    """Re-encrypt with the first (newest) key."""
    try:
        return _current().rotate(ciphertext.encode()).decode()
    except InvalidToken:
        raise DecryptionFailed("ciphertext matches no configured key") from None
