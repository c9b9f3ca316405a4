"""Secrets at rest: per-bot provider keys and signing secrets, encrypted with Fernet.

Fernet (from `cryptography`) is AES-128-CBC with an HMAC-SHA256 tag, so a tampered or
foreign ciphertext is refused rather than decrypted to garbage. The key comes from
`BOTGPT_ENCRYPTION_KEY` (a comma-separated list: the first encrypts, all decrypt, which is
how a key is rotated) or, for the embedded default, a key generated once into the data
folder. `botgpt keys rotate` re-encrypts every stored secret with the first key.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from botgpt.files import write_private

KEY_FILE = "encryption_key"


class SecretUnreadable(Exception):
    """A stored secret could not be decrypted with any configured key."""


class SecretBox:
    """Encrypts and decrypts short secrets with the configured keys."""

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("at least one encryption key is needed")
        self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])

    def encrypt(self, plaintext: str) -> str:
        """The ciphertext (URL-safe text) of `plaintext`."""
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        """The plaintext of a ciphertext made with any configured key."""
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise SecretUnreadable("a stored secret cannot be decrypted with these keys") from exc

    def rotate(self, ciphertext: str) -> str:
        """The same secret encrypted with the first (newest) key."""
        try:
            return self._fernet.rotate(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise SecretUnreadable("a stored secret cannot be decrypted with these keys") from exc


def new_key() -> str:
    """A fresh Fernet key (for `BOTGPT_ENCRYPTION_KEY`)."""
    return Fernet.generate_key().decode()


def configured_keys(raw: str, data_dir: Path) -> list[str]:
    """The keys from the setting, else the data folder's key (created 0600 on first use)."""
    keys = [k.strip() for k in raw.split(",") if k.strip()]
    if keys:
        for key in keys:
            Fernet(key.encode())  # raises ValueError for a malformed key
        return keys
    path = data_dir / KEY_FILE
    if path.exists():
        return [path.read_text().strip()]
    key = new_key()
    try:
        write_private(path, key)  # 0600 from its first byte, in a 0700 folder
    except FileExistsError:  # another process generated it first
        return [path.read_text().strip()]
    return [key]
