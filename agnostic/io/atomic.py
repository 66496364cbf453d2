"""Atomic file replacement: a reader (or a crash) sees the old file or the new one, never half of one.

The bytes go to a temporary file beside the target, `.NAME.agnostic-<16 hex digits>.tmp`, renamed
over it once whole. Permissions are those `open(path, "w")` gives: a new file gets 0o666 less the
umask (applied by the kernel as the file is created, so nothing races other threads on os.umask);
a file that replaces another keeps the permission bits of the one it replaces, as editors do (and
as torch.save, which truncates in place). The owner is the writer's: a rename makes a new file.

A save killed midway leaves its temporary file behind. The next save to the folder removes such
leftovers, and only those: names of our own pattern, that no live save holds. A save holds an
exclusive flock on its temporary file from creation until after the rename; the sweep removes only
files it can lock itself, and only while the name still is the file it locked. This is POSIX only;
elsewhere leftovers stay for the user to remove.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat

if os.name == "posix":
    import fcntl
else:
    fcntl = None

__all__ = ["atomic_write_bytes"]

_TEMPORARY = re.compile(r"\..*\.agnostic-[0-9a-f]{16}\.tmp", re.DOTALL)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same directory: written, fsynced, then
    renamed over `path` (an atomic step on POSIX and Windows), and the directory fsynced so the rename
    itself survives a power cut. A process killed at any point leaves the previous file whole."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    _remove_stale_temporaries(directory)  # first: a disk filled by leftovers gets its space back
    fd, tmp = _create_locked_temporary(directory, os.path.basename(path))
    try:
        mode = _mode_to_keep(path)
        if mode is not None:  # before any byte is written: a private file's data stays private
            os.chmod(fd if os.chmod in os.supports_fd else tmp, mode)
        with open(fd, "wb", closefd=False) as f:
            f.write(data)
        os.fsync(fd)
        if fcntl is None:  # Windows cannot rename an open file (and has no lock to keep)
            os.close(fd)
            fd = -1
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    finally:
        if fd >= 0:
            os.close(fd)  # releases the lock, after the rename
    _fsync_directory(directory)


def _remove_stale_temporaries(directory: str) -> None:
    """Remove the temporary files that killed saves left in `directory`. Files of other names, and
    the temporary files of saves still running, are left alone."""
    if fcntl is None:
        return
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if _TEMPORARY.fullmatch(name):
            _remove_if_unlocked(os.path.join(directory, name))


def _create_locked_temporary(directory: str, name: str) -> tuple[int, str]:
    """A new temporary file, created with mode 0o666 (the kernel applies the umask) and locked."""
    while True:
        short = os.fsdecode(os.fsencode(name)[:200])  # the temporary's name fits in 255 bytes
        tmp = os.path.join(directory, f".{short}.agnostic-{secrets.token_hex(8)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        if fcntl is None:
            return fd, tmp
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # waits only while a sweep that found it unlocked decides
        except OSError:  # a file system without locks: its sweeps cannot lock, so remove nothing
            return fd, tmp
        if _is_named(fd, tmp):
            return fd, tmp
        os.close(fd)  # that sweep removed it between our open and our lock: take another name


def _remove_if_unlocked(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:  # gone already, a symbolic link, or not ours to read
        return
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError: a live save holds it
            if _is_named(fd, path):  # not renamed into place since we listed it
                os.unlink(path)
    except OSError:
        pass
    finally:
        os.close(fd)


def _is_named(fd: int, path: str) -> bool:
    """Whether `path` still names the file open as `fd`."""
    try:
        named = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def _mode_to_keep(path: str) -> int | None:
    """The permission bits of the regular file at `path`, if there is one to replace."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return stat.S_IMODE(st.st_mode) & 0o777 if stat.S_ISREG(st.st_mode) else None


def _fsync_directory(directory: str) -> None:
    if os.name != "posix":  # Windows cannot open a directory; its rename is already durable enough
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
