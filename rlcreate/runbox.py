"""A run folder is a closed box: paths stay inside it, writes and deletes never follow a link, and
one process at a time writes it.

A run folder may come from someone else. rlcreate therefore

* refuses a run folder holding a symbolic link anywhere inside it (:func:`refuse_links`) when a
  command opens it; the paths it then uses under the folder are rlcreate's own fixed names;
* writes every file through a temporary file created exclusively (``O_CREAT | O_EXCL |
  O_NOFOLLOW``) next to it and renamed into place (:func:`write_bytes`, :func:`write_text`,
  :func:`atomic_target` for libraries that write by path; whole folders with :func:`replace_folder`),
  so a planted link is replaced, never written through, and a kill or a full disk leaves the
  previous file intact;
* deletes without following links (:func:`remove`);
* reads files it embeds elsewhere (the HTML report) only if they are regular files inside the run
  (:func:`read_regular`);
* checks run folder names from the command line or a recipe the same way everywhere (:func:`check_name`);
* holds a lock per run folder while a command writes it (:func:`run_lock`, ``filelock``); a second
  writer gets one error line naming the holder's pid. The lock is an OS file lock, so a killed
  holder releases it and the next command takes it over.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rlcreate.errors import UserError

__all__ = [
    "RunBoxError",
    "RunLockedError",
    "NAME_RULE",
    "MAX_NAME",
    "check_name",
    "check_out_dir",
    "refuse_links",
    "write_bytes",
    "write_text",
    "atomic_target",
    "replace_folder",
    "move_folder_into_place",
    "remove",
    "read_regular",
    "run_lock",
    "lock_path",
    "LOCK_SUFFIX",
    "describe_os_error",
    "name_arg",
    "out_arg",
    "check_replaceable",
    "GENERATED_MARKER",
]

MAX_NAME = 100
NAME_RULE = f"use 1-{MAX_NAME} letters, digits, '-', '_' or '.', not starting with '.' (it names a folder)"
_NAME = re.compile(rf"[A-Za-z0-9_-][A-Za-z0-9._-]{{0,{MAX_NAME - 1}}}")
LOCK_SUFFIX = ".rlcreate-lock"
_MAX_ENTRIES = 200_000  # a run folder holds hundreds of files; stop scanning a pathological one


class RunBoxError(UserError):
    """A path would leave its run folder (a link, ``..``), or a name is not a plain folder name."""


class RunLockedError(UserError):
    """Another rlcreate process holds the run folder's lock."""


def check_name(field: str, value: object) -> str:
    """A run folder name given as ``--name`` or a recipe's ``name:``: one plain path component."""
    if not isinstance(value, str) or not _NAME.fullmatch(value) or value in (".", ".."):
        raise RunBoxError(f"{field} = {str(value)[:120]!r}: {NAME_RULE}")
    return value


def name_arg(text: str) -> str:
    """argparse type for ``--name``: a bad name exits 2 with one line."""
    import argparse

    try:
        return check_name("--name", text)
    except RunBoxError as exc:
        raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[1]) from None


def out_arg(text: str) -> str:
    """argparse type for ``--out``: refuses a path that exists and is not a folder."""
    import argparse

    if not text:
        raise argparse.ArgumentTypeError("empty path; pass a folder")
    try:
        check_out_dir("--out", text)
    except RunBoxError as exc:
        raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[1]) from None
    return text


def check_out_dir(field: str, value: str | os.PathLike) -> Path:
    """An output folder (``--out``): it may not exist yet, but must not be a file or a device."""
    path = Path(value)
    if (path.exists() or path.is_symlink()) and not path.is_dir():
        raise RunBoxError(
            f"{field} = {str(value)!r}: exists and is not a folder; pass a folder (it is created if missing)"
        )
    return path


def refuse_links(root: str | os.PathLike) -> Path:
    """Refuse a run folder with a symbolic link anywhere inside it (rlcreate would otherwise read,
    write or delete what the link points to), or anything but folders and regular files (a FIFO
    would make whatever opens it, rlcreate or a library, wait forever; a device never ends). ``root``
    itself is the user's own path."""
    root = Path(root)
    count = 0
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in dirs + files:
            count += 1
            p = Path(folder) / name
            mode = os.lstat(p).st_mode
            if stat.S_ISLNK(mode):
                raise RunBoxError(
                    f"{p}: a symbolic link inside the run folder {str(root)!r}; rlcreate never "
                    "follows links in run folders (they could read or overwrite files outside "
                    "it): remove the link or copy the real file in its place"
                )
            if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                raise RunBoxError(
                    f"{p}: not a file or folder (a FIFO, socket or device) inside the run folder "
                    f"{str(root)!r}; a run folder holds only plain files: remove it"
                )
        if count > _MAX_ENTRIES:
            raise RunBoxError(f"{str(root)!r}: more than {_MAX_ENTRIES} entries; not a run folder")
    return root


def _check_components(root: Path, path: Path) -> None:
    """No component of ``path`` below ``root`` may be a link (the last one may be missing)."""
    rel = path.relative_to(root)
    cur = root
    for part in rel.parts:
        cur = cur / part
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            return
        if stat.S_ISLNK(st.st_mode):
            raise RunBoxError(
                f"{cur}: a symbolic link inside the run folder {str(root)!r}; rlcreate never "
                "follows links in run folders: remove it"
            )


# --------------------------------------------------------------------------------- writes


def _tmp_name(path: Path) -> Path:
    # keeps the suffix: libraries that write by path (PIL, matplotlib) pick the format from it
    return path.with_name(f".{path.stem}.tmp-{os.getpid()}-{secrets.token_hex(4)}{path.suffix}")


def _create_exclusive(tmp: Path) -> int:
    return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)


def _refuse_link_parent(path: Path) -> None:
    if path.parent.is_symlink():
        raise RunBoxError(f"{path.parent}: is a symbolic link; rlcreate does not write through links")


def write_bytes(path: str | os.PathLike, data: bytes, fsync: bool = True) -> Path:
    """Write ``path`` atomically without following a link: an exclusive temporary file next to it,
    then a rename over it (a link at ``path`` is replaced, not written through)."""
    path = Path(path)
    _refuse_link_parent(path)
    tmp = _tmp_name(path)
    fd = _create_exclusive(tmp)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    return path


def write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8", fsync: bool = True) -> Path:
    """:func:`write_bytes` for text."""
    return write_bytes(path, text.encode(encoding), fsync=fsync)


@contextmanager
def atomic_target(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary path (created exclusively, same folder and suffix) for a library that
    writes by file name (PIL, matplotlib, safetensors, numpy); on success it is renamed to ``path``."""
    path = Path(path)
    _refuse_link_parent(path)
    tmp = _tmp_name(path)
    os.close(_create_exclusive(tmp))
    try:
        yield tmp
        if tmp.is_symlink() or not tmp.is_file():
            raise RunBoxError(f"{tmp}: replaced by something else while writing; not renamed")
        os.replace(tmp, path)
    finally:
        _unlink_quietly(tmp)


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


@contextmanager
def replace_folder(final: str | os.PathLike, fsync: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary sibling folder; on success it replaces ``final`` as a whole in one
    rename (an older ``final`` is moved aside and removed), so readers see all old files or all new
    ones and a kill leaves the old folder whole. ``fsync``: flush every file before the rename
    (checkpoints). Temporaries start with ``.tmp-`` (a resumed run removes stale ones)."""
    import tempfile

    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    _refuse_link_parent(final)
    # a fresh, unpredictable folder (mkdtemp creates it exclusively): nothing planted can be in it
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-{os.getpid()}-", dir=final.parent))
    try:
        yield tmp
        if fsync:
            _fsync_tree(tmp)
        move_folder_into_place(tmp, final)
    finally:
        if tmp.exists():
            remove(tmp)


def move_folder_into_place(src: str | os.PathLike, final: str | os.PathLike) -> None:
    """Rename the finished folder ``src`` to ``final`` (same parent). A rename onto a folder fails,
    so an older ``final`` is first moved aside into a ``.tmp-old-`` folder (which a resumed run
    removes) and deleted after: a kill at any moment leaves the old folder or the new one whole."""
    import tempfile

    src, final = Path(src), Path(final)
    if final.is_symlink() or final.exists():
        old = Path(tempfile.mkdtemp(prefix=f".tmp-old-{final.name}-", dir=final.parent))
        os.replace(final, old / final.name)  # renames whatever sits at final (a link itself), never follows it
        os.replace(src, final)
        remove(old)
    else:
        os.replace(src, final)


def _fsync_tree(folder: Path) -> None:
    for p in folder.rglob("*"):
        if p.is_file() and not p.is_symlink():
            with open(p, "rb") as f:
                os.fsync(f.fileno())


#: Written into a folder ``generate`` filled, so a later ``generate`` may replace it as a whole.
GENERATED_MARKER = ".rlcreate-generated"


def check_replaceable(folder: str | os.PathLike, field: str = "--out") -> Path:
    """A folder ``generate`` may replace as a whole: missing, empty, or written by ``generate``
    (its marker, or, as older versions wrote, only files with a ``metrics.json`` and no
    ``config.yaml`` that are not a run's own ``samples/`` / ``eval_samples/``). Anything else (a run
    folder, a run's training samples, someone's documents) is refused, never deleted."""
    folder = Path(folder)
    if folder.is_symlink():
        raise RunBoxError(f"{field} = {str(folder)!r}: a symbolic link; pass a real folder")
    if not folder.exists():
        return folder
    if not folder.is_dir():
        raise RunBoxError(f"{field} = {str(folder)!r}: exists and is not a folder; pass a folder")
    entries = list(folder.iterdir())
    names = {p.name for p in entries}
    plain_files = all(p.is_file() and not p.is_symlink() for p in entries)
    # train and eval write the same kind of folder into a run (samples/, eval_samples/): not generate's
    run_samples = (folder.parent / "config.yaml").is_file() and folder.name != "generated"
    legacy = "metrics.json" in names and "config.yaml" not in names and plain_files and not run_samples
    ours = GENERATED_MARKER in names or legacy
    if entries and not ours:
        raise RunBoxError(
            f"{field} = {str(folder)!r}: holds files `rlcreate generate` did not write; pass a new or "
            "empty folder (generate replaces its own earlier output as a whole)"
        )
    return folder


def remove(path: str | os.PathLike) -> None:
    """Delete a file, a link (the link itself) or a folder tree, never following a link."""
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        # shutil.rmtree removes links inside without following them (fd-based on Linux)
        shutil.rmtree(path)
    else:
        os.unlink(path)


def read_regular(path: str | os.PathLike, root: str | os.PathLike, cap: int = 64 * 2**20) -> bytes:
    """The bytes of ``path`` if it is a regular file inside ``root`` (no link on the way, not
    hard-linked elsewhere, at most ``cap`` bytes); for embedding a run's files in a report."""
    path, root = Path(path), Path(root)
    _check_components(root, path)
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or st.st_size > cap:
            raise RunBoxError(
                f"{path}: not a plain file of the run (a device, a hard link or over {cap} bytes); not embedded"
            )
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read(cap + 1)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------- lock


def lock_path(run_dir: str | os.PathLike) -> Path:
    """Where a run folder's lock lives: next to it (``runs/.NAME.rlcreate-lock``), so locking never
    creates or changes anything inside the run folder."""
    run_dir = Path(os.path.abspath(run_dir))
    return run_dir.parent / f".{run_dir.name}{LOCK_SUFFIX}"


@contextmanager
def run_lock(run_dir: str | os.PathLike, command: str = "rlcreate") -> Iterator[Path]:
    """Hold the run folder's lock while a command writes it (the folder need not exist yet).

    A second writer gets :class:`RunLockedError` naming the holder's pid (kept in a sidecar file,
    ``.NAME.rlcreate-lock.pid``). The lock is ``filelock``'s OS lock (``flock``): the kernel releases
    it when its holder dies, so a killed run's lock is simply taken over by the next command."""
    from filelock import FileLock, Timeout

    run_dir = Path(run_dir)
    lock_file = lock_path(run_dir)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    pid_path = lock_file.with_name(lock_file.name + ".pid")
    for p in (lock_file, pid_path):
        if p.is_symlink():
            raise RunBoxError(f"{p}: a symbolic link; rlcreate never follows links for its lock files: remove it")
    lock = FileLock(str(lock_file), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        try:
            holder = pid_path.read_text(encoding="utf-8").strip()[:80] or "unknown"
        except OSError:
            holder = "unknown"
        raise RunLockedError(
            f"{run_dir}: in use by another rlcreate process ({holder}); wait for it to finish or stop it, then rerun"
        ) from None
    try:
        write_text(pid_path, f"pid {os.getpid()}, {command}\n", fsync=False)
        yield run_dir
    finally:
        _unlink_quietly(pid_path)
        lock.release()


# --------------------------------------------------------------------------------- OS errors


def describe_os_error(exc: OSError) -> str:
    """One line for an OS error at a read or write: the path, what happened and the fix."""
    where = exc.filename or "a file"
    what = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = (
            "free disk space (or pass --out on another disk) and rerun; files already saved are kept "
            "(an interrupted training continues with --resume)"
        )
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "write somewhere you may write (another --out), or fix the permissions"
    elif exc.errno == errno.ENAMETOOLONG:
        fix = "use a shorter --name / --out"
    elif exc.errno in (errno.ENOTDIR, errno.EISDIR, errno.EEXIST):
        fix = "a file and a folder clash on that path; pass another --out / --name"
    elif exc.errno == errno.ELOOP:
        fix = "a symbolic link is in the way; rlcreate does not follow links in run folders: remove it"
    else:
        fix = "check the path and rerun"
    return f"{where}: {what}; {fix}"
