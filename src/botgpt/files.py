"""Files the service creates are its owner's only: folders 0700, files 0600.

The data folder holds the database, the generated JWT secret and every uploaded document;
none of it is for other accounts on the machine, whatever the process's umask.
"""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create `path` and its missing parents as 0700 folders (existing ones are left alone)."""
    missing: list[Path] = []
    current = Path(path)
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue  # created concurrently
        os.chmod(folder, DIR_MODE)  # mkdir's mode is filtered by the umask
    return Path(path)


def private_file(path: Path) -> Path:
    """Create `path` empty as a 0600 file when it does not exist yet (never truncates)."""
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    os.close(fd)
    return path


def write_private(path: Path, text: str) -> None:
    """Create `path` holding `text`, readable by the owner only from its first byte."""
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
