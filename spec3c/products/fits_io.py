"""Writing datamodels to FITS: atomically, validated, and fast with many HDUs."""

from __future__ import annotations

import contextlib
import contextvars
import errno
import os
import re
import socket
import tempfile
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NoReturn

from stdatamodels.validate import ValidationWarning

from ..errors import Spec3cError
from ..fitsio import asdf_write_unvalidated, indexed_hdus
from ..gwcs_asdf import materialised
from .direct_fits import write_fits_direct
from .meta import stamp_model

__all__ = ["atomic_save", "finished_in_background", "remove_stale_temporaries", "validate_strict"]

#: a product being written: ``.<final name>.<host>.<pid>.<random>.tmp`` beside its final name
_TEMPORARY = re.compile(r"^\.(?P<final>.+\.fits)\.(?P<host>[^.]*)\.(?P<pid>\d+)\.[^.]+\.tmp$")
_NO_SPACE = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def _host() -> str:
    return socket.gethostname().replace(".", "-")


def _writer_alive(pid: int, written: float) -> bool:
    """Whether the process ``pid`` that last modified a temporary file at ``written`` still runs.

    A killed writer whose parent died too stays a zombie until init reaps it,
    and ``kill(pid, 0)`` succeeds on a zombie: on Linux the process state is
    read from ``/proc``.  A process that started after the file was written
    is a later one given the same pid, not the writer.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: /proc still tells its state
    state = _proc_state(pid)
    if state is None:  # no /proc (not Linux): trust kill()
        return True
    status, started = state
    return status not in ("Z", "X") and started <= written


def _proc_state(pid: int) -> tuple[str, float] | None:
    """(state letter, start time as Unix time) of ``pid`` from ``/proc``; None where there is no ``/proc``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except OSError:
        return ("X", 0.0) if Path("/proc/self/stat").exists() else None  # gone since kill(), or no /proc
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": fields[0] is the state
    started = time.time() - uptime + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # stat field 22
    return fields[0], started - 1.0  # a second of slack for clock-tick rounding


def remove_stale_temporaries(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files of product writes whose process died (killed mid-write).

    Only files of this host are judged (a live writer elsewhere shares the
    folder on a network file system); returns the removed paths.
    """
    removed = []
    host = _host()
    for path in Path(folder).glob(".*.tmp"):
        match = _TEMPORARY.match(path.name)
        if not match or match["host"] != host:
            continue
        try:
            written = path.stat().st_mtime
        except FileNotFoundError:
            continue  # its writer finished meanwhile
        if not _writer_alive(int(match["pid"]), written):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


#: set (to anything but "" or "0") to validate every product against its datamodel schema as it is
#: written.  The test suite sets it, so every product type of every mode is validated there; a
#: run skips it: a quarter of export's time, for a check that depends on the writer, not the data.
VALIDATE_ENV = "SPEC3C_VALIDATE_PRODUCTS"


#: set to "stdatamodels" to write products with stdatamodels' ``to_fits`` (the reference writer the
#: direct one is tested against) instead of :func:`~spec3c.products.direct_fits.write_fits_direct`
WRITER_ENV = "SPEC3C_PRODUCT_WRITER"


def direct_writing() -> bool:
    """Whether the writers that can are to write with the direct FITS writer (:data:`WRITER_ENV` unset)."""
    return os.environ.get(WRITER_ENV, "").strip().lower() != "stdatamodels"


def validating() -> bool:
    """Whether products are validated as they are written (:data:`VALIDATE_ENV`)."""
    return os.environ.get(VALIDATE_ENV, "") not in ("", "0")


def validate_strict(model: Any) -> None:
    """Validate ``model`` against its schema; a ValidationWarning becomes an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", ValidationWarning)
        model.validate()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_save(model: Any, path: str | os.PathLike[str], *, fast: bool = False, direct: bool = False) -> Path:
    """Write ``model`` to ``path`` (FITS) all at once, validated when :func:`validating`.

    The file is written to a hidden temporary file in the destination folder
    and renamed over ``path`` only when complete, so readers never see a
    partial product and a failure leaves no file behind (an existing file at
    ``path`` is kept).  ``meta.filename`` is set to the final file name.

    Parameters
    ----------
    model : stdatamodels DataModel
    path : path-like
        Destination; must end in ``.fits``.
    fast : bool
        Index HDU lookups (:func:`spec3c.fitsio.indexed_hdus`; for models with many extensions)
        when stdatamodels writes the file (the direct writer always indexes them).
    direct : bool
        Write with :func:`~spec3c.products.direct_fits.write_fits_direct` (unless :data:`WRITER_ENV`
        says stdatamodels): the same file, made without stdatamodels' schema walk.  The writers whose
        products the test suite compares file against file with stdatamodels' pass it.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    if path.suffix != ".fits":
        raise ValueError(f"{path}: products are FITS files (.fits)")
    stamp_model(model)  # provenance keywords and extension, inside export's meta.stamping block
    model.meta.filename = path.name
    if validating():
        _validate_with_wcs_objects(model)
    try:
        _write_then_rename(model, path, fast, direct and direct_writing())
    except Exception as exc:
        _raise_product_error(path, exc)
    return path


def _raise_product_error(path: Path, exc: Exception) -> NoReturn:
    """Raise what a product that could not be written because of ``exc`` raises: a
    :class:`Spec3cError` naming the file and the reason when an OSError is behind ``exc``, else ``exc``."""
    os_error = _os_error_of(exc)
    if os_error is None:
        raise exc
    # a short write (astropy: "N requested and M written", no errno) is a full disk or file-size limit too
    short = os_error.errno is None and "written" in str(os_error)
    reason = "File too large or disk full (a short write)" if short else (os_error.strerror or str(os_error))
    hint = ("; free space (or raise the file-size limit) and export again: the products already "
            "written are complete" if short or os_error.errno in _NO_SPACE else "")
    raise Spec3cError(f"{path}: the product could not be written: {reason}{hint}") from exc


# -- a product's last steps (sync to disk, then rename) in the background ----------------------

@dataclass
class _Finishing:
    """A :func:`finished_in_background` block: its thread, and the products it is finishing."""

    thread: ThreadPoolExecutor
    pending: list[tuple[Path, Future[None]]] = field(default_factory=list)


_FINISHING: contextvars.ContextVar[_Finishing | None] = contextvars.ContextVar("spec3c_finishing", default=None)


@contextlib.contextmanager
def finished_in_background() -> Iterator[None]:
    """Products written in the block are synced to disk and renamed into place by a background
    thread while the block goes on writing (a sync is a wait of ~3 ms a file, not work); the
    block's end waits for them all, and raises the first failure (its file not left behind).
    Inside the block, a product's file appears at its path only by the block's end."""
    # a thread of the block's own: none is left running after it (nor copied into a forked worker)
    block = _Finishing(ThreadPoolExecutor(max_workers=1, thread_name_prefix="spec3c-sync"))
    token = _FINISHING.set(block)
    failure: tuple[Path, Exception] | None = None
    try:
        yield
    finally:
        _FINISHING.reset(token)
        for path, future in block.pending:
            try:
                future.result()
            except Exception as exc:  # every file is waited for; the first failure is raised
                failure = failure or (path, exc)
        block.thread.shutdown()
    if failure is not None:
        _raise_product_error(*failure)


def _finish(f: IO[bytes], tmp: Path, path: Path) -> None:
    """Sync the written temporary ``tmp`` to disk and rename it to ``path``; removed on failure."""
    try:
        with f:
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; products get the usual mode
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _validate_with_wcs_objects(model: Any) -> None:
    """:func:`validate_strict` of ``model`` as it would be with gwcs objects where its tree has
    stored WCSs (the schema wants objects); the model keeps its stored WCSs for the writer."""
    tree = model.instance
    kept = dict(tree)
    _with_wcs_objects(model)
    try:
        validate_strict(model)
    finally:
        tree.update({key: value for key, value in kept.items() if tree.get(key) is not value})


def _with_wcs_objects(model: Any) -> None:
    """Give ``model`` gwcs objects where its tree has stored WCSs (:class:`~spec3c.gwcs_asdf.StoredWcs`,
    which only the direct writer writes)."""
    tree = model.instance
    objects = materialised(tree)
    if objects is not tree:
        tree.update(objects)


def _os_error_of(exc: BaseException) -> OSError | None:
    """The OSError behind ``exc``: itself, or one it was raised while handling (astropy's clean-up
    after a failed write, e.g. a full disk, can raise an unrelated error on top of it)."""
    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:
        if isinstance(error, OSError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def _write_then_rename(model: Any, path: Path, fast: bool, direct: bool) -> None:
    """Write ``model`` to a temporary file beside ``path`` and rename it to ``path``; no file left on failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}.{_host()}.{os.getpid()}."
    fd, tmp_name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    f = os.fdopen(fd, "wb")
    try:
        # a file object (not a path) keeps meta.filename = the final name
        # the writers' trees are valid (the test suite validates every product type): asdf need not check
        with asdf_write_unvalidated():
            if not (direct and write_fits_direct(model, f)):
                _with_wcs_objects(model)  # stdatamodels writes gwcs objects only
                with indexed_hdus() if fast else contextlib.nullcontext():
                    model.to_fits(f)
        f.flush()
    except BaseException:
        with contextlib.suppress(OSError):  # closing flushes what is buffered: a full disk fails again
            f.close()
        tmp.unlink(missing_ok=True)
        raise
    block = _FINISHING.get()
    if block is None:
        _finish(f, tmp, path)
    else:
        block.pending.append((path, block.thread.submit(_finish, f, tmp, path)))
