"""Swap two folders atomically: Linux ``renameat2(..., RENAME_EXCHANGE)``.

The store compacts a closed day's hour files into one file by building the new
partition folder beside the old one and exchanging the two paths in one system call
(:meth:`observatory.store.Store.compact_closed`): a reader that looks the path up
gets the old folder or the new one, never neither and never a mix.  ``os.rename``
cannot do this for a non-empty target folder.

``renameat2`` came with Linux 3.15 (ext4, tmpfs, xfs, btrfs support
``RENAME_EXCHANGE``; some network and overlay file systems do not) and glibc 2.28
(called through ``ctypes``).  :func:`exchange_supported` probes a folder's file
system once; callers skip the swap when it says no.  Source: ``man 2 renameat2``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["ExchangeUnsupported", "exchange", "exchange_supported"]

#: ``renameat2`` flag: exchange ``old`` and ``new`` atomically (``<linux/fs.h>``).
RENAME_EXCHANGE = 2
#: ``AT_FDCWD``: paths are relative to the working directory (``<fcntl.h>``).
_AT_FDCWD = -100
#: errno values that mean "this kernel, libc or file system cannot exchange".
_UNSUPPORTED = {errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP}


class ExchangeUnsupported(OSError):
    """``renameat2(RENAME_EXCHANGE)`` is missing here (libc, kernel or file system)."""


def _renameat2() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    libc = ctypes.CDLL(None, use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is None:
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def exchange(a: Path, b: Path) -> None:
    """Swap the paths ``a`` and ``b`` (both must exist, on one file system) atomically.

    Raises:
        ExchangeUnsupported: libc has no ``renameat2`` or the kernel or file system
            refuses ``RENAME_EXCHANGE``.
        OSError: any other failure (a path missing, permissions), errno set.
    """
    fn = _renameat2()
    if fn is None:
        raise ExchangeUnsupported(errno.ENOSYS, "libc has no renameat2", str(a))
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) != 0:
        err = ctypes.get_errno()
        kind = ExchangeUnsupported if err in _UNSUPPORTED else OSError
        raise kind(err, f"renameat2(RENAME_EXCHANGE) {a} <-> {b}: {os.strerror(err)}", str(a))


def exchange_supported(folder: Path) -> bool:
    """True when two sub-folders of ``folder`` (which must exist) can be exchanged:
    creates two marked temporary folders there, swaps them, checks and removes them."""
    probe = Path(tempfile.mkdtemp(prefix=".tmp-exchange-probe-", dir=folder))
    try:
        (probe / "a").mkdir()
        (probe / "b").mkdir()
        (probe / "a" / "marker").touch()
        try:
            exchange(probe / "a", probe / "b")
        except ExchangeUnsupported:
            return False
        return (probe / "b" / "marker").exists() and not (probe / "a" / "marker").exists()
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(probe)
