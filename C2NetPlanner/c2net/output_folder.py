"""The one output-folder rule of every command (a user's files are sacred).

* ``--out`` may be missing (it is created) or an empty folder.
* A folder that already holds files is used only with ``overwrite`` (``--overwrite``), and
  then **only the files this command writes are replaced**; every other file in it stays as it
  was. Files this command may write but did not write this time (e.g. the PDF of an earlier
  successful run, when this run ends in an error report) are removed with the old ones, so a
  folder never mixes two runs.
* ``--out`` must not be, contain or lie inside an input (the CT file, its DICOM folder, a mask):
  that is refused before any work, whatever ``overwrite`` says.
* A folder that cannot be written is refused before any work, naming the folder.

Writing is all or nothing: every file goes into a hidden temporary folder inside ``--out``
(same file system, so moving a file is a rename); only when every writer has finished are the
previous versions of this command's files moved aside, the new files moved in, and the old ones
deleted. On any failure the temporary folder is removed and ``--out`` is left as it was (a
folder this command created is removed again).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence, Union

from .errors import OutputError

PathLike = Union[str, "os.PathLike[str]"]
TMP_PREFIX = ".c2net-tmp-"
OLD_PREFIX = ".c2net-old-"

OVERWRITE_RULE = ("with --overwrite only the files this command writes are replaced; "
                  "other files in the folder are kept")


def _listing(folder: Path) -> list:
    try:
        return sorted(p.name for p in folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def check_not_input(out: Path, inputs: Iterable[Optional[PathLike]]) -> None:
    """Refuse an output folder that is, contains or lies inside one of ``inputs``."""
    real_out = out.resolve()
    for raw in inputs:
        if raw is None or not isinstance(raw, (str, os.PathLike)):
            continue
        src = Path(raw).expanduser()
        if not src.exists():
            continue
        real_src = src.resolve()
        if real_src == real_out or _inside(real_src, real_out):
            raise OutputError(
                f"The output folder {out} contains the input {src}; writing the report there "
                "could replace or mix with the input.",
                "Choose an output folder outside the input's folder, e.g. a new sibling folder.",
                code="output_contains_input")
        if real_src.is_dir() and _inside(real_out, real_src):
            raise OutputError(
                f"The output folder {out} lies inside the input folder {src}; the input would "
                "change (a DICOM folder must stay as it was).",
                "Choose an output folder outside the input folder.",
                code="output_inside_input")


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_writable(out: Path) -> None:
    """Refuse a folder (or the folder it would be created in) that this user cannot write."""
    base = _nearest_existing(out)
    if not base.is_dir():
        raise OutputError(f"The output path {out} cannot be created: {base} is a file.",
                          "Choose a folder path whose parents are folders.")
    try:
        fd, probe = tempfile.mkstemp(prefix=".c2net-write-test-", dir=str(base))
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(
            f"The output folder {base} cannot be written ({exc.strerror or exc}).",
            "Choose a folder you can write to, or fix its permissions.",
            code="output_not_writable") from None


def check_output_folder(out_dir: PathLike, overwrite: bool,
                        inputs: Sequence[Optional[PathLike]] = ()) -> Path:
    """Apply the rule above before any work; return the absolute output path.

    Raises :class:`c2net.errors.OutputError` (exit code 2) naming the folder and the fix.
    """
    out = Path(out_dir).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise OutputError(f"The output path {out} exists and is not a folder.",
                          "Choose a folder path (it is created if missing).")
    check_not_input(out, inputs)
    check_writable(out)   # before "not empty": --overwrite would not help an unwritable folder
    present = [n for n in _listing(out) if not n.startswith((TMP_PREFIX, OLD_PREFIX))]
    if present and not overwrite:
        shown = ", ".join(present[:5]) + (" ..." if len(present) > 5 else "")
        raise OutputError(
            f"The output folder {out} already exists and is not empty ({shown}).",
            "Choose a new or empty folder, or add --overwrite (" + OVERWRITE_RULE + ").")
    return out


@contextlib.contextmanager
def output_folder(out_dir: PathLike, owned_names: Iterable[str], overwrite: bool = False,
                  inputs: Sequence[Optional[PathLike]] = ()) -> Iterator[Path]:
    """Yield a temporary folder; on clean exit its files replace this command's files in
    ``out_dir`` (see the module docstring). ``owned_names``: every file or folder name this
    command may write into ``out_dir``; nothing else there is ever touched."""
    owned = set(owned_names)
    out = check_output_folder(out_dir, overwrite, inputs)
    created = [p for p in [out, *out.parents] if not p.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=str(out)))
    except OSError as exc:
        raise OutputError(f"Cannot create the output folder {out}: {exc.strerror or exc}.",
                          "Check that the parent folder exists and is writable.") from None
    try:
        yield tmp
        _commit(tmp, out, owned, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for p in created:            # deepest first: remove only what we made, and only if empty
            with contextlib.suppress(OSError):
                p.rmdir()
        raise


def _commit(tmp: Path, out: Path, owned: set, overwrite: bool) -> None:
    new = sorted(p.name for p in tmp.iterdir())
    stray = set(new) - owned
    if stray:  # a writer produced a file the caller did not declare: a bug, never a silent clobber
        raise OutputError(f"Internal error: undeclared output file(s) {sorted(stray)}.",
                          "This is a bug in C2NetPlanner; please report it.", code="output_bug")
    others = [n for n in _listing(out) if n != tmp.name and not n.startswith(OLD_PREFIX)]
    if others and not overwrite:  # somebody wrote into the folder while we worked
        raise OutputError(f"The output folder {out} received files while the report was written "
                          f"({', '.join(others[:5])}).",
                          "Run again into a new folder, or add --overwrite.")
    os.chmod(tmp, 0o755)
    old = [n for n in others if n in owned]
    backup = Path(tempfile.mkdtemp(prefix=OLD_PREFIX, dir=str(out))) if old else None
    moved_old, moved_new = [], []
    try:
        for n in old:
            os.replace(out / n, backup / n)
            moved_old.append(n)
        for n in new:
            os.replace(tmp / n, out / n)
            moved_new.append(n)
    except BaseException:
        for n in moved_new:          # undo: the new files go, the previous ones come back
            _remove(out / n)
        for n in moved_old:
            os.replace(backup / n, out / n)
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
        raise
    shutil.rmtree(tmp, ignore_errors=True)
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def replace_file(path: PathLike, text: str) -> None:
    """Write a small text file atomically with the user's normal permissions (umask)."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=str(p.parent))
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
