"""Files colossim writes where the user says (charts, calibration profiles, probe rows): written
whole or not at all, with errors as one line naming the path.

A file is written into a temporary file beside its target and renamed over it, so a failed write
leaves any earlier file as it was; :func:`check_writable` lets a command that measures for minutes
refuse a path it could not write before it starts, not after.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from colossim.errors import ColossimError


def _refused(path: Path, why: str, field: str) -> ColossimError:
    return ColossimError(f"cannot write '{path}': {why}", field=field, value=str(path))


def check_writable(path: str | Path, field: str, create_folders: bool = False) -> None:
    """Refuse, as one line naming ``field``, a path :func:`write_text_whole` could not write: a
    folder, or a file in a folder that does not exist or cannot be written.  With
    ``create_folders``, a missing folder is fine where :func:`make_folder` could create it (its
    nearest existing ancestor is a writable folder); nothing is created here."""
    path = Path(path)
    folder = path.parent
    if path.is_dir():
        raise _refused(path, "Is a directory", field)
    if create_folders:
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
    if not folder.is_dir():
        raise _refused(path, "Not a directory" if folder.exists() else "No such file or directory", field)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise _refused(path, "Permission denied", field)


def make_folder(path: str | Path, field: str) -> None:
    """Create the folder ``path`` will be written into (and its parents), or refuse in one line."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _refused(path, e.strerror, field) from None


def _new_file_mode(path: Path) -> int:
    """The permissions a plain ``open(path, "w")`` would give: the file's own where it exists,
    else read-write for all less the process umask (a temporary file is created private)."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def write_text_whole(path: str | Path, text: str, field: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` all at once: into a temporary file beside it, then renamed
    over it.  An ``OSError`` is one line naming the path and ``field``; on any failure the
    temporary file is removed and an earlier file at ``path`` is left as it was."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise _refused(path, e.strerror, field) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, _new_file_mode(path))
        os.replace(tmp, path)
    except OSError as e:
        raise _refused(path, e.strerror, field) from None
    finally:
        Path(tmp).unlink(missing_ok=True)  # still there only when the write or the rename failed
