"""All-or-nothing output folders.

Every file of a report is written into a fresh temporary folder *next to* the requested output
folder (same file system, so the final ``os.replace`` is a rename, not a copy). Only when every
writer has finished is the temporary folder renamed to its final name. On any failure the
temporary folder is removed and the requested folder is left exactly as it was (absent, or with
its previous contents).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from ..errors import OutputError


def _is_nonempty_dir(path: Path) -> bool:
    try:
        return any(path.iterdir())
    except FileNotFoundError:
        return False


def check_output_dir(out_dir: Path, overwrite: bool) -> None:
    """Refuse an output path that is a file, or a non-empty folder unless ``overwrite``.

    Raises :class:`c2net.errors.OutputError` before any work is done.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(
            f"The output path {out_dir} exists and is not a folder.",
            "Choose a folder path for the report (it is created if missing).",
        )
    if out_dir.is_dir() and _is_nonempty_dir(out_dir) and not overwrite:
        raise OutputError(
            f"The output folder {out_dir} already exists and is not empty.",
            "Choose a new or empty folder, or pass overwrite=True (--overwrite) to replace it.",
        )


@contextlib.contextmanager
def atomic_output_dir(out_dir: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder; on clean exit it becomes ``out_dir`` in one rename.

    * ``out_dir`` missing or empty: it is (re)placed by the temporary folder.
    * ``out_dir`` not empty: refused (:class:`OutputError`) unless ``overwrite``; with
      ``overwrite`` the old folder is first renamed aside, the new one renamed in, and only then
      the old one deleted, so a crash in between never leaves ``out_dir`` missing *and* the old
      contents lost.
    * An exception inside the ``with`` block removes the temporary folder and re-raises; the
      existing ``out_dir`` is untouched.
    """
    out = Path(out_dir).expanduser().absolute()
    check_output_dir(out, overwrite)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=str(out.parent)))
    except OSError as exc:
        raise OutputError(
            f"Cannot create the output folder next to {out}: {exc.strerror or exc}.",
            "Check that the parent folder exists and is writable, or choose another folder.",
        ) from exc
    try:
        yield tmp
        _commit(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _commit(tmp: Path, out: Path, overwrite: bool) -> None:
    """Move the finished temporary folder to ``out`` (see :func:`atomic_output_dir`)."""
    # Re-check: another process may have written into out_dir while we worked.
    check_output_dir(out, overwrite)
    os.chmod(tmp, 0o755)  # mkdtemp makes it private (0700); a report folder is not secret
    if not out.exists():
        os.replace(tmp, out)
        return
    if not _is_nonempty_dir(out):
        out.rmdir()
        os.replace(tmp, out)
        return
    backup = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=str(out.parent)))
    backup.rmdir()
    os.replace(out, backup)
    try:
        os.replace(tmp, out)
    except BaseException:
        os.replace(backup, out)   # put the previous report back
        raise
    shutil.rmtree(backup, ignore_errors=True)

