"""The ``spec3c`` command line.

Heavy modules are imported inside each command so ``spec3c --help`` is fast.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import __version__
from . import log as logs
from .asdf_plugins import load_only_jwst_plugins
from .errors import Spec3cError
from .import_hooks import defer_unused_imports

if TYPE_CHECKING:
    from tqdm import tqdm

    from .naming import ProductNaming
    from .process import ProcessReport, SourceReport
    from .products.export import ExportedPaths, ExportRequest, SourceExport


#: ``spec3c --debug``: errors show their traceback
_DEBUG = False

_log = logs.logger("cli")


class _Interrupted(click.ClickException):
    exit_code = 130  # the shell's code for a command stopped by SIGINT


def _message(exc: BaseException) -> str:
    """One line (or a short list) saying what went wrong, without a traceback."""
    if isinstance(exc, Spec3cError):
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror}"
    return f"unexpected {type(exc).__name__}: {exc} (spec3c --debug ... shows the traceback)"


def _fail_cleanly(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn errors into a message and exit status 1 (Ctrl-C: 130); ``--debug`` keeps the traceback.

    The command runs under :func:`spec3c.interrupt.interruptible`: Ctrl-C stops
    its worker processes too.
    """
    import functools

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from .interrupt import interruptible

        try:
            with interruptible():
                return func(*args, **kwargs)
        except click.ClickException as exc:
            _log.error("%s", exc.format_message(), extra=logs.FILE_ONLY)  # the terminal shows it as click does
            raise
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt as exc:
            _log.warning("interrupted", extra=logs.FILE_ONLY)
            if _DEBUG:
                raise
            stopped = _Interrupted("interrupted; what was written is complete: run the same command again "
                                   "to continue")
            if getattr(sys.modules.get("__main__"), "main", None) is main:  # the spec3c process itself
                stopped.show()
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(stopped.exit_code)  # now: tearing down the loaded modules takes seconds
            raise stopped from exc
        except Exception as exc:
            _log.error("%s", _message(exc), extra=logs.FILE_ONLY)
            _log.debug("traceback of the error", exc_info=True, extra=logs.FILE_ONLY)  # --debug: also on stderr
            if _DEBUG:
                raise
            raise click.ClickException(_message(exc)) from exc

    return wrapper


class _Bar:
    """Progress fed by ``(label, done, total)`` callbacks.

    A tqdm bar when stderr is a terminal; otherwise (a batch job's log) an
    INFO line of logger ``spec3c.<desc>`` every tenth of the work or every
    :attr:`EVERY` seconds, and at the end.  Nothing with ``--quiet``.
    """

    #: seconds between two progress lines at most (when stderr is not a terminal)
    EVERY = 30.0

    def __init__(self, desc: str, unit: str) -> None:
        self.desc, self.unit = desc, unit
        self.bar: tqdm | None = None
        settings = logs.current()
        self.terminal = sys.stderr.isatty() and not (settings is not None and settings.quiet)
        self.log = logs.logger(desc)
        self._tenth, self._at = 0, time.monotonic()

    def __call__(self, label: str, done: int, total: int) -> None:
        if not self.terminal:
            self._log_line(label, done, total)
            return
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=total, desc=self.desc, unit=self.unit, file=sys.stderr, leave=True)
        self.bar.set_postfix_str(label[-40:], refresh=False)
        self.bar.update(done - self.bar.n)

    def _log_line(self, label: str, done: int, total: int) -> None:
        tenth, now = done * 10 // max(total, 1), time.monotonic()
        if done < total and tenth <= self._tenth and now - self._at < self.EVERY:
            return
        self._tenth, self._at = tenth, now
        self.log.info("%d/%d %s(s) done (%d %%), last: %s", done, total, self.unit, 100 * done // max(total, 1),
                      label)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="spec3c")
@click.option("--log-level", type=click.Choice(logs.LEVELS, case_sensitive=False), default="INFO",
              show_default=True, help="Log records at this level and above (stderr and --log-file).")
@click.option("--log-file", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="PATH",
              help="Also write the log to PATH (appended to), every record at --log-level.")
@click.option("--quiet", "-q", is_flag=True,
              help="Only warnings and errors on stderr, no progress (--log-file still gets the rest).")
@click.option("--debug", is_flag=True,
              help="Show the traceback of an error (e.g. for a bug report); implies --log-level DEBUG.")
@click.pass_context
def main(ctx: click.Context, log_level: str, log_file: Path | None, quiet: bool, debug: bool) -> None:
    """spec3c: JWST stage-3 spectroscopy (calwebb_spec3) over an array store.

    \b
    Typical use:
      spec3c simulate nirspec-mos --output-dir sim      # make test data
      spec3c ingest sim/asn.json --store prog.store     # read the exposures once
      spec3c ls prog.store                              # what is in the store
      spec3c show prog.store --source 12345_1           # one source's cutouts

    \b
    Logging (options before the command): what each step does per source at
    INFO, skips and caveats at WARNING, on stderr (--quiet: warnings and errors
    only) and in --log-file; a progress bar on a terminal, progress lines else.
    """
    global _DEBUG
    _DEBUG = debug
    load_only_jwst_plugins()  # asdf then skips plugins JWST files never use (1-2 s of imports)
    defer_unused_imports()  # fitters and solvers few runs use wait until one does; no scipy for tables
    try:
        logs.configure("DEBUG" if debug else log_level, log_file, quiet=quiet, debug=debug)
    except OSError as exc:
        raise click.ClickException(f"{log_file}: the log file cannot be written ({exc.strerror or exc})") from exc
    ctx.call_on_close(logs.reset)
    _log.info("spec3c %s %s", __version__, ctx.invoked_subcommand, extra=logs.FILE_ONLY)


@main.command()
@click.argument("mode")
@click.option("--output-dir", "-o", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the _cal.fits files, the ASN and the truth file.")
@click.option("--seed", default=0, show_default=True, help="Random seed (same seed, same files).")
@click.option("--n-exposures", default=3, show_default=True, help="Number of exposures (nod positions cycle).")
@click.option("--n-sources", type=int, default=None, help="Number of sources / slitlets (mode default if omitted).")
@click.option("--n-columns", type=int, default=None,
              help="Cutout length along dispersion (mode default if omitted); MIRI LRS: spectral detector rows.")
@click.option("--nod-subtracted/--no-nod-subtracted", default=True, show_default=True,
              help="Subtract the other nods as stage 2 does (removes the sky; not for miri-lrs-slitless).")
@click.option("--moving-target", is_flag=True,
              help="A moving target (TARGTYPE MOVING, MT_RA/MT_DEC per exposure); the sky position drifts.")
@click.option("--with-background", type=click.IntRange(min=0), default=0, show_default=True, metavar="N",
              help="Add N dedicated background exposures (blank sky) as ASN background members "
                   "(spec2 _x1d files); the science exposures then keep their sky.")
@click.option("--channels", default=None, metavar="LIST",
              help="miri-mrs: MRS channels, e.g. 12 or 1,2,3,4 (default all); each detector records two.")
@click.option("--bands", default=None, metavar="LIST",
              help="miri-mrs: MRS bands, e.g. SHORT,MEDIUM (default SHORT).")
@click.option("--grism", type=click.Choice(["R", "C"], case_sensitive=False), default=None,
              help="niriss-wfss: GR150R or GR150C (default C); nircam-wfss: GRISMR or GRISMC (default R).")
@click.option("--module", type=click.Choice(["A", "B"], case_sensitive=False), default=None,
              help="nircam-wfss: every exposure on this module (default: alternate A and B).")
@click.option("--n-integrations", type=click.IntRange(min=1), default=None,
              help="niriss-soss: integrations of the time series (default 5).")
@click.option("--subarray", type=click.Choice(["SUBSTRIP256", "SUBSTRIP96"], case_sensitive=False), default=None,
              help="niriss-soss: the subarray (default SUBSTRIP256).")
@_fail_cleanly
def simulate(mode: str, output_dir: Path, seed: int, n_exposures: int, n_sources: int | None,  # noqa: PLR0913
             n_columns: int | None, nod_subtracted: bool, moving_target: bool, with_background: int,
             channels: str | None, bands: str | None, grism: str | None, module: str | None,
             n_integrations: int | None, subarray: str | None) -> None:
    """Write a simulated stage-2 dataset for MODE.

    \b
    Modes:
      nirspec-fs         NIRSpec fixed slits (MultiSlitModel, 3-point nod)
      nirspec-mos        NIRSpec MOS slitlets (MultiSlitModel, 3-shutter nod)
      miri-lrs-fs        MIRI LRS fixed slit (ImageModel, 2-point along-slit nod)
      miri-lrs-slitless  MIRI LRS slitless, non-TSO (ImageModel, SLITLESSPRISM)
      nirspec-ifu        NIRSpec IFU (IFUImageModel, 30 slices, coordinate-based gwcs;
                         --n-exposures dithers, --n-sources, --n-columns)
      miri-mrs           MIRI MRS (IFUImageModel per detector and band; --n-exposures
                         dither positions of the 4-point pattern; --channels, --bands)
      niriss-wfss        NIRISS WFSS (MultiSlitModel, one grism cutout per source and
                         order, plus the spec2 _x1d files and their association; --grism)
      nircam-wfss        NIRCam WFSS (the same; modules A and B alternate; --grism, --module)
      niriss-soss        NIRISS SOSS time series (one _calints CubeModel, orders 1-3, and the
                         PASTASOSS/SPECPROFILE/SPECKERNEL files; --n-integrations, --subarray)

    Produces _cal.fits exposures (with a gwcs per slit or image), a spec3
    association and a truth file (true spectra, sky levels, injected cosmic
    rays).
    """
    from .simulate import MODES, SimOptions
    from .simulate import simulate as run

    if mode not in MODES:
        raise click.BadParameter(f"unknown mode {mode!r}; choose from {', '.join(MODES)}", param_hint="MODE")
    bar = _Bar("simulate", "slit")
    try:
        options = SimOptions(seed=seed, n_exposures=n_exposures, n_sources=n_sources, n_columns=n_columns,
                             nod_subtracted=nod_subtracted, moving_target=moving_target,
                             with_background=with_background,
                             channels=None if channels is None else tuple(int(c) for c in channels if c.isdigit()),
                             bands=None if bands is None else tuple(b.strip().upper() for b in bands.split(",")),
                             grism=grism, module=module, n_integrations=n_integrations,
                             subarray=None if subarray is None else subarray.upper())
        res = run(mode, output_dir, options, progress=lambda done, total: bar(mode, done, total))
    finally:
        bar.close()
    click.echo(f"association: {res.asn_path}")
    if res.x1d_asn_path is not None:
        click.echo(f"x1d inputs:  {res.x1d_asn_path}")
    click.echo(f"exposures:   {len(res.cal_paths)} files in {output_dir}")
    click.echo(f"truth:       {res.truth_path}")
    for reftype, path in (res.reference_files or {}).items():
        click.echo(f"{reftype + ':':<13}{path}")


@main.command()
@click.argument("asn", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--store", "store_path", required=True, type=click.Path(path_type=Path),
              help="Store folder (created if missing).")
@click.option("--backend", type=click.Choice(["tiledb", "hdf5"]), default=None,
              help="Store backend of a new store (default tiledb); an existing store keeps its own.")
@click.option("--replace", is_flag=True, help="Overwrite exposures whose file changed since they were ingested.")
@click.option("--allow-outside-paths", is_flag=True,
              help="Accept members (and product names) outside the association's folder.")
@click.option("--workers", type=int, default=None,
              help="Processes reading large members (IFU frames) at once (default: CPU count, within a quarter "
                   "of the RAM).")
@_fail_cleanly
def ingest(asn: Path, store_path: Path, backend: str | None, replace: bool, allow_outside_paths: bool,  # noqa: PLR0913
           workers: int | None) -> None:
    """Read the exposures of association ASN into a store.

    Per-pixel wavelength, RA/Dec and slit coordinates are evaluated once from
    each input gwcs.  Each exposure is written atomically; files already
    ingested (same sha256) are skipped, so re-running after an interruption
    completes the store.
    """
    from .ingest import ingest as run

    _check_writable(store_path, "store")
    bar = _Bar("ingest", "exposure")
    try:
        report = run(asn, store_path, backend=backend, replace=replace,
                     allow_outside=allow_outside_paths, progress=bar, workers=workers)
    finally:
        bar.close()
    if report.nothing_to_do:
        click.echo(f"nothing to do: all {len(report.unchanged)} exposures already in {store_path}")
        return
    click.echo(
        f"ingested {len(report.ingested)} new, {len(report.replaced)} replaced, "
        f"{len(report.unchanged)} unchanged exposures ({report.n_cutouts} cutouts) "
        f"into {store_path} in {report.seconds:.1f} s"
    )


@main.command()
def modes() -> None:
    """List the modes spec3c serves: their EXP_TYPEs, step plans and products."""
    from .modes.registry import BY_MODEL_TYPE, MODES

    model_types = {id(mode): model for (_, model), mode in BY_MODEL_TYPE.items()}
    for mode in (*MODES, *dict.fromkeys(BY_MODEL_TYPE.values())):
        given = f" ({model_types[id(mode)]} files)" if id(mode) in model_types else ""
        click.echo(f"{mode.name}: {', '.join(mode.exp_types)}{given}")
        click.echo(f"  plan:     exp_to_source, {', '.join(mode.plan)}")
        products = ", ".join(f"{suffix} ({layout})" for suffix, layout in mode.products.items())
        click.echo(f"  products: {products}")


@main.command(name="ls")
@click.argument("store_path", metavar="STORE", type=click.Path(exists=True, path_type=Path))
@click.option("--sources", "list_sources", is_flag=True, help="Also list every source with its cutouts.")
@_fail_cleanly
def ls_command(store_path: Path, list_sources: bool) -> None:
    """Summarise a store: exposures, sources, slits and counts."""
    from .summary import store_summary

    click.echo(store_summary(store_path, list_sources=list_sources))


@main.command()
@click.argument("store_path", metavar="STORE", type=click.Path(exists=True, path_type=Path))
@click.option("--source", "source", required=True, help="Source key (MOS source name, else source id).")
@_fail_cleanly
def show(store_path: Path, source: str) -> None:
    """Show one source's cutouts, exposure by exposure."""
    from .summary import source_summary

    click.echo(source_summary(store_path, source))


@main.command()
@click.argument("store_path", metavar="STORE", type=click.Path(exists=True, path_type=Path))
@click.option("--repair", is_flag=True,
              help="First remove what interrupted writes left (refused while another spec3c process writes).")
@_fail_cleanly
def check(store_path: Path, repair: bool) -> None:
    """Check that STORE is consistent; exit status 1 if not.

    
    Every committed exposure must be complete (its cutouts, planes and gwcs
    read back), every result must read back, every completed step's result
    must be there, and no leftover of an interrupted write (uncommitted
    fragment, temporary file, cells of an uncommitted exposure) may remain.
    Leftovers are invisible to readers; the next ingest or process removes
    them, or --repair now.
    """
    from .check import check_store

    report = check_store(store_path, repair=repair)
    click.echo(report.summary())
    if not report.ok:
        sys.exit(1)


def _step_overrides(ctx: click.Context) -> list[str]:
    """``--steps.STEP.PARAM=VALUE`` (or ``--steps.STEP.PARAM VALUE``) items left by click."""
    items, args = [], list(ctx.args)
    while args:
        arg = args.pop(0)
        if arg.split("=", 1)[0] == "--max-memory":  # the IFU cube memory budget, e.g. --max-memory=4GB
            arg = "--steps.cube_build.max_memory" + arg[len("--max-memory"):]
        if not arg.startswith("--steps."):
            raise click.UsageError(f"unexpected argument {arg!r}; step parameters look like --steps.STEP.PARAM=VALUE")
        if "=" not in arg:
            if not args:
                raise click.UsageError(f"{arg} needs a value")
            arg = f"{arg}={args.pop(0)}"
        items.append(arg)
    return items


def _resolved_config(ctx: click.Context, config_file: Path | None, skip: tuple[str, ...],  # type: ignore[no-untyped-def]
                     step: str | None = None):
    """Defaults < --config (ASDF, TOML or JSON) < --steps.STEP.PARAM < --skip; ``--save-parameters`` writes it."""
    from .config import parse_cli_overrides
    from .params_asdf import resolve_with_file, write_parameter_file

    config = resolve_with_file(config_file, parse_cli_overrides(_step_overrides(ctx)), skip, step=step)
    target = ctx.meta.get(_SAVE_PARAMETERS)
    if target is not None:
        write_parameter_file(target, config, step)
        click.echo(f"parameters saved to {target} (jwst ASDF format)")
    return config


#: ``ctx.meta`` key of ``--save-parameters`` (an option that does not reach the command's arguments)
_SAVE_PARAMETERS = "spec3c.save_parameters"


def _remember_save_parameters(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        ctx.meta[_SAVE_PARAMETERS] = value


_SAVE_PARAMETERS_OPTION = click.option(
    "--save-parameters", type=click.Path(dir_okay=False, path_type=Path), default=None, expose_value=False,
    callback=_remember_save_parameters, metavar="FILE",
    help="Write the resolved parameters as a jwst ASDF parameter file (jwst reads it: strun FILE INPUT).")


_PROCESS_CONTEXT = {"ignore_unknown_options": True, "allow_extra_args": True}

_SCHEDULER_OPTION = click.option(
    "--scheduler", default=None, metavar="ADDRESS",
    help="Run the per-source work on Dask: tcp://HOST:PORT (a running dask.distributed cluster; the store "
         "must be on a path every worker sees) or local[:N] (a LocalCluster of N processes). "
         "Default: a local process pool (no Dask needed). Needs pip install 'spec3c[dask]'.")


def _process_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--sources", default=None, help="Comma-separated source keys (default: all)."),
        click.option("--workers", type=int, default=None,
                     help="Parallel source workers, at most one per core (default: CPU count); a small store "
                          "or association is processed in this process (NIRISS SOSS: threads sharing "
                          "the integrations)."),
        click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="Step parameter file: a jwst ASDF parameter file (strun --save-parameters) of "
                          "calwebb_spec3 or a step, or TOML/JSON with [steps.STEP] tables."),
        _SAVE_PARAMETERS_OPTION,
        click.option("--skip", multiple=True, help="Skip a step (repeatable), e.g. --skip outlier_detection."),
        click.option("--force", is_flag=True, help="Recompute sources that are already complete."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _run_process(ctx: click.Context, store_path: Path, sources: str | None, workers: int | None,  # noqa: PLR0913
                 config_file: Path | None, skip: tuple[str, ...], force: bool,
                 scheduler: str | None = None, export: ExportRequest | None = None) -> ProcessReport:
    """Process the store (``export``: and write each source's products as it is processed);
    the sources that failed are listed on stderr."""
    from .check import store_writer
    from .process import process_store

    config = _resolved_config(ctx, config_file, skip)
    chosen = [s.strip() for s in sources.split(",") if s.strip()] if sources else None
    _check_writable(store_path, "store")
    bar = _Bar("process", "source")
    try:
        with store_writer(store_path):
            report = process_store(store_path, sources=chosen, config=config, workers=workers, force=force,
                                   progress=bar, scheduler=scheduler, export=export)
    finally:
        bar.close()
    failed = report.failed
    click.echo(f"processed {len(report.processed)} sources ({len(failed)} failed), "
               f"{len(report.already_done)} already complete, in {report.seconds:.1f} s")
    for reason, count in sorted(report.reasons().items()):
        click.echo(f"  recomputed {count}: {reason}")
    for r in failed:
        click.echo(f"  FAILED {r.source}: {r.error}", err=True)
    return report


@main.command(context_settings=_PROCESS_CONTEXT)
@click.argument("store_path", metavar="STORE", type=click.Path(exists=True, path_type=Path))
@_process_options
@_SCHEDULER_OPTION
@click.pass_context
@_fail_cleanly
def process(ctx: click.Context, store_path: Path, sources: str | None, workers: int | None,  # noqa: PLR0913
            config_file: Path | None, skip: tuple[str, ...], force: bool, scheduler: str | None) -> None:
    """Run the stage-3 steps on every source of STORE (or --sources).

    \b
    Each mode runs the reference's plan after exp_to_source (`spec3c modes`
    lists them), e.g. NIRSpec FS/MOS: assign_mtwcs, master_background,
    outlier_detection, pixel_replace (skipped by default), resample_spec,
    extract_1d.  Parameters and defaults are the reference's; override any of them with
    --steps.STEP.PARAM=VALUE, e.g.
      --steps.extract_1d.override_extract1d=apertures.json
      --steps.resample_spec.pixfrac=0.8  --steps.outlier_detection.snr="3.0 2.0"
    Sources run in parallel processes (or on Dask, --scheduler).  A source is
    recomputed exactly when its key changed: its inputs (a new or changed
    exposure), association data, parameters, reference files or the spec3c
    version; an interrupted run is completed by running again (--force
    recomputes all).  Status, key and provenance are stored per source.
    """
    workers = _workers_for_store(store_path, workers, scheduler)
    with _local_pool(workers, scheduler, ("spec3c.process",)):
        failed = _run_process(ctx, store_path, sources, workers, config_file, skip, force, scheduler).failed
    if failed:
        ctx.exit(1)


def _local_pool(workers: int | None, scheduler: str | None, modules: tuple[str, ...]) -> contextlib.AbstractContextManager[Any]:
    """The command's local worker pool, its workers forked at once from this process after it imported
    ``modules`` (before it opens the store: :func:`spec3c.parallel.shared_executor`); none in-process
    (``workers`` 1) or on Dask."""
    from .parallel import shared_executor

    if scheduler is not None or workers == 1:
        return contextlib.nullcontext()
    return shared_executor(None, workers, modules)


def _workers_for_store(store_path: Path, workers: int | None, scheduler: str | None) -> int | None:
    """``--workers`` for the jobs over a store: 1 (this process) for a small one (see
    :data:`spec3c.parallel.INLINE_BYTES`)."""
    from .parallel import data_bytes, workers_for

    return workers_for(data_bytes([store_path]), workers, scheduler)


def _check_writable(folder: Path, what: str) -> None:
    """A clear error now, before any work, if ``folder`` (or the folder it would be made in) is not writable."""
    import tempfile

    target = folder
    while not target.exists() and target.parent != target:
        target = target.parent
    try:
        with tempfile.TemporaryFile(dir=target):
            pass
    except OSError as exc:
        raise click.ClickException(f"{folder}: the {what} cannot be written there ({exc.strerror or exc}); "
                                   "nothing was done") from exc


def _store_naming(store_path: Path) -> ProductNaming:
    """The product names of the store's association."""
    from .naming import ProductNaming
    from .results import load_association
    from .store import open_store

    with open_store(store_path) as store:
        try:
            asn = load_association(store)
        except KeyError as exc:
            raise click.ClickException(f"{store_path}: no association recorded; re-run `spec3c ingest`") from exc
    return ProductNaming(asn["product_name"], asn["asn_id"], asn.get("exp_type"), asn.get("table_name"))


def _export_request(store_path: Path, output_dir: Path, suffixes: Sequence[str]) -> ExportRequest:
    """``spec3c run``'s export, made by process's workers as each source is processed."""
    from .products.export import export_request
    from .products.fits_io import remove_stale_temporaries
    from .store import open_store

    remove_stale_temporaries(output_dir)  # products whose writer was killed mid-write
    with open_store(store_path) as store:
        return export_request(store, output_dir, _store_naming(store_path), suffixes)


def _exports_in_parts(store_path: Path) -> bool:
    """Whether the store's sources' products are written in parts (IFU: cube by cube, exposure by exposure)."""
    from .products.export import exports_in_parts
    from .store import open_store

    with open_store(store_path) as store:
        return exports_in_parts(store)


def _export(store_path: Path, output_dir: Path, suffix: str, sources: str | None,  # noqa: PLR0913
            workers: int | None = None, scheduler: str | None = None,
            exported: Mapping[str, SourceExport] | None = None) -> ExportedPaths:
    """Export the store (``exported``: sources whose products process's workers wrote, only recorded)."""
    from .check import store_writer
    from .products import export_store
    from .products.fits_io import remove_stale_temporaries

    _check_writable(output_dir, "output folder")
    naming = _store_naming(store_path)
    suffixes = [s.strip() for s in suffix.split(",") if s.strip()]
    chosen = [s.strip() for s in sources.split(",") if s.strip()] if sources else None
    output_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(output_dir)  # products whose writer was killed mid-write
    bar = _Bar("export", "source")
    try:
        with store_writer(store_path):  # the export records what it wrote in the store
            return export_store(store_path, output_dir, naming, suffixes, chosen, progress=bar, workers=workers,
                                scheduler=scheduler, written_by_process=exported)
    finally:
        bar.close()


@main.command()
@click.argument("store_path", metavar="STORE", type=click.Path(exists=True, path_type=Path))
@click.option("--output-dir", "-o", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the FITS products.")
@click.option("--suffix", default="cal,crf,s2d,s3d,x1d,c1d", show_default=True,
              help="Products to write (those that exist for each source).")
@click.option("--sources", default=None, help="Comma-separated source keys (default: all).")
@click.option("--workers", type=int, default=None,
              help="Parallel export processes, at most one per core (default: CPU count); a small store is "
                   "exported in this process.")
@_SCHEDULER_OPTION
@_fail_cleanly
def export(store_path: Path, output_dir: Path, suffix: str, sources: str | None, workers: int | None,  # noqa: PLR0913
           scheduler: str | None) -> None:
    """Write the standard FITS products of STORE, named as the reference names them.

    A product is written again only when its source was recomputed since, or
    the file is missing or was changed; each carries its provenance (CAL_VER,
    R_<REFTYPE> keywords and a PROVENANCE extension).
    """
    workers = _workers_for_store(store_path, workers, scheduler)
    with _local_pool(workers, scheduler, ("spec3c.products.export",)):
        exported = _export(store_path, output_dir, suffix, sources, workers, scheduler)
    click.echo(f"wrote {len(exported.written)} products to {output_dir} ({len(exported.unchanged)} unchanged)")


@main.command()
@click.argument("store_path", metavar="STORE", type=click.Path(exists=True, path_type=Path))
@click.option("--output-dir", "-o", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for index.html and the per-source pages and figures (sources/).")
@click.option("--sources", default=None, help="Comma-separated source keys (default: all).")
@click.option("--workers", type=int, default=None, help="Parallel drawing processes (default: CPU count).")
@_SCHEDULER_OPTION
@_fail_cleanly
def qa(store_path: Path, output_dir: Path, sources: str | None, workers: int | None,  # noqa: PLR0913
       scheduler: str | None) -> None:
    """Write a quality-assurance web page of STORE: OUTPUT_DIR/index.html.

    \b
    Per source, PNG figures of what the store holds: the s2d with the
    extraction aperture (IFU: each cube's white-light image), the 1-D spectra
    with their error band, and each exposure's outlier map; the index is a
    sortable table of the sources (median S/N, outlier-flagged fraction, step
    statuses) linking to each source's page.  Needs matplotlib:
    pip install 'spec3c[qa]'.
    """
    from .qa import write_qa

    _check_writable(output_dir, "QA page")
    chosen = [s.strip() for s in sources.split(",") if s.strip()] if sources else None
    bar = _Bar("qa", "source")
    try:
        report = write_qa(store_path, output_dir, chosen, workers=workers, scheduler=scheduler, progress=bar)
    finally:
        bar.close()
    click.echo(f"wrote {report.index} ({len(report.rows)} sources, {report.n_images} figures)")
    if report.failed:
        lines = "\n  ".join(f"{source}: {error}" for source, error in report.failed.items())
        raise click.ClickException(f"{len(report.failed)} source(s) have no figures:\n  {lines}")


def _members(asn: Path) -> list[Path]:
    """The member files the association names (none if it cannot be read: ingest reports that properly)."""
    import json

    try:
        return [asn.parent / m["expname"] for p in json.loads(asn.read_text())["products"] for m in p["members"]]
    except Exception:  # noqa: BLE001 - only a performance hint
        return []


def _single_source(members: list[Path]) -> bool:
    """True when the association of ``members`` is processed as one source (its mode's naming says so)."""
    from astropy.io import fits

    from .modes.registry import mode_for

    try:
        return mode_for(fits.getval(members[0], "EXP_TYPE")).naming.whole_association
    except Exception:  # noqa: BLE001 - only a performance hint; ingest reports bad input properly
        return False


@main.command(context_settings=_PROCESS_CONTEXT)
@click.argument("asn", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--output-dir", "-o", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the products; the store is kept there as spec3c.store.")
@click.option("--backend", type=click.Choice(["tiledb", "hdf5"]), default=None, help="Store backend (default tiledb).")
@_process_options
@_SCHEDULER_OPTION
@click.pass_context
@_fail_cleanly
def run(ctx: click.Context, asn: Path, output_dir: Path, backend: str | None, sources: str | None,  # noqa: PLR0913
        workers: int | None, config_file: Path | None, skip: tuple[str, ...], force: bool,
        scheduler: str | None) -> None:
    """Ingest ASN, process every source and export the products into OUTPUT_DIR.

    Each source's products are written as it is processed, by the worker that processed it (slit
    and slitless modes); the export stage then writes the association's products and any a worker
    could not.  An IFU association's products (its one source's cubes, spectra and exposures) are
    written at the export stage by this process and a helper process on another core.  The last
    line says how long each stage took (``run: ingest 4.4 s, process 9.4 s, export 0.1 s``).
    """
    from .ingest import ingest as run_ingest
    from .parallel import data_bytes, shared_executor, workers_for
    from .products.export import DEFAULT_SUFFIXES

    store_path = output_dir / "spec3c.store"
    _check_writable(output_dir, "output folder")
    _check_writable(store_path, "store")
    output_dir.mkdir(parents=True, exist_ok=True)
    # small associations and one-source modes run in this process; else one warm worker pool for
    # process and export, starting while ingest runs
    members = _members(asn)
    workers = workers_for(data_bytes(members), workers, scheduler)
    warm = ("spec3c.process", "spec3c.products.export")  # what process and export run in the workers
    in_process = scheduler is None and (workers == 1 or _single_source(members))
    if in_process:  # one process reads, processes and writes in turn: each phase's freed arrays go back
        from .allocator import return_freed_blocks

        return_freed_blocks()
    seconds: dict[str, float] = {}
    with contextlib.nullcontext() if in_process else shared_executor(scheduler, workers, warm):
        bar = _Bar("ingest", "exposure")
        start = time.perf_counter()
        try:
            report = run_ingest(asn, store_path, backend=backend, progress=bar, workers=workers, scheduler=scheduler)
        finally:
            bar.close()
        click.echo(f"ingest: {len(report.ingested)} new, {len(report.unchanged)} unchanged exposures")
        seconds["ingest"], start = time.perf_counter() - start, time.perf_counter()
        # each source's products are written by the worker that processed it, from what it holds;
        # the export stage records them and writes the rest (association products, any it could not)
        request: ExportRequest | None = _export_request(store_path, output_dir, DEFAULT_SUFFIXES)
        if in_process and (workers or os.cpu_count() or 1) > 1 and _exports_in_parts(store_path):
            request = None  # the export stage writes them, in parts, with a helper process on the other core
        processed = _run_process(ctx, store_path, sources, workers, config_file, skip, force, scheduler, request)
        failed = processed.failed
        seconds["process"], start = time.perf_counter() - start, time.perf_counter()
        good = _sources_left(store_path, sources, failed)  # the others are still exported
        if good != "":
            written = {r.source: r.exported for r in processed.processed if r.exported is not None}
            exported = _export(store_path, output_dir, ",".join(DEFAULT_SUFFIXES), good, workers, scheduler,
                               written)
            seconds["export"] = time.perf_counter() - start
            click.echo(f"wrote {len(exported.written)} products to {output_dir} "
                       f"({len(exported.unchanged)} unchanged):")
            for path in exported.written:
                click.echo(f"  {path.name}")
    click.echo("run: " + ", ".join(f"{stage} {s:.1f} s" for stage, s in seconds.items()))
    if failed:
        click.echo(f"{len(failed)} source(s) failed and have no products:", err=True)
        for r in failed:
            click.echo(f"  {r.source}: {r.error}", err=True)
        ctx.exit(1)


def _sources_left(store_path: Path, sources: str | None, failed: list[SourceReport]) -> str | None:
    """``--sources`` for the export after processing: all chosen (None: all) but the failed ones."""
    if not failed:
        return sources
    from .store import open_store

    with open_store(store_path) as store:
        chosen = [s.strip() for s in sources.split(",") if s.strip()] if sources else store.sources()
    bad = {r.source for r in failed}
    return ",".join(s for s in chosen if s not in bad)


@main.command()
@click.argument("product", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--store", "store_path", required=True, type=click.Path(exists=True, path_type=Path),
              help="The store the product was exported from.")
@_fail_cleanly
def verify(product: Path, store_path: Path) -> None:
    """Recompute PRODUCT from STORE and say whether it is identical.

    The product's PROVENANCE extension names its source and parameters; the
    source is processed again in memory (the store is not changed) and the
    product written again to a temporary folder; every HDU's data and header
    are compared.  Exit status 1 when they differ.
    """
    from .verify import verify_product

    result = verify_product(product, store_path)
    why = (f"; what it is computed from changed since: {', '.join(result.key_changes)}"
           if result.key_changes else "")
    if result.identical:
        click.echo(f"{product.name}: identical to a recomputation of source {result.source} from {store_path}{why}")
        return
    click.echo(f"{product.name}: DIFFERS from a recomputation of source {result.source} from {store_path}{why}")
    for line in result.differences:
        click.echo(f"  {line}")
    sys.exit(1)



def _single_step_args(step_name: str, raw: tuple[str, ...]) -> tuple[list[Path], list[str]]:
    """Split ``spec3c step`` arguments into input files and ``--steps.STEP.PARAM=VALUE`` overrides.

    strun's short form ``--PARAM=VALUE`` (or ``--PARAM VALUE``) means ``--steps.STEP.PARAM=VALUE``.
    """
    inputs: list[Path] = []
    overrides: list[str] = []
    args = list(raw)
    while args:
        arg = args.pop(0)
        if not arg.startswith("--"):
            inputs.append(Path(arg))
            continue
        if not arg.startswith("--steps."):
            name, sep, value = arg[2:].partition("=")
            arg = f"--steps.{step_name}.{name.replace('-', '_')}" + (f"={value}" if sep else "")
        if "=" not in arg:
            if not args:
                raise click.UsageError(f"{arg} needs a value")
            arg = f"{arg}={args.pop(0)}"
        overrides.append(arg)
    return inputs, overrides


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("step_name", metavar="STEP")
@click.argument("args", nargs=-1, type=click.UNPROCESSED, metavar="INPUT... [--steps.STEP.PARAM=VALUE]...")
@click.option("--output-dir", "-o", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the products (default: the parameter file's output_dir, else the current folder).")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Parameter file: a jwst ASDF file of the step (strun --save-parameters) or of "
                   "calwebb_spec3, or TOML/JSON with [steps.STEP] tables.")
@_SAVE_PARAMETERS_OPTION
@click.pass_context
@_fail_cleanly
def step(ctx: click.Context, step_name: str, args: tuple[str, ...], output_dir: Path | None,
         config_file: Path | None) -> None:
    """Run one step on FITS products, as `strun STEP INPUT` does.

    \b
    STEP and its inputs (jwst- or spec3c-written):
      extract_1d         _s2d files              -> <root>_extract1dstep.fits each
      combine_1d         _x1d files or an ASN    -> <root>_combine1dstep.fits
      resample_spec      _cal/_crf files or ASN  -> <root>_resamplespecstep.fits
      outlier_detection  _cal/_crf files or ASN  -> <input>[_<asn_id>]_outlierdetectionstep.fits each
      master_background  an ASN                  -> <input>_masterbackgroundstep.fits each
    Parameters: --steps.STEP.PARAM=VALUE or strun's --PARAM=VALUE, e.g.
      spec3c step extract_1d x_s2d.fits -o out --override_extract1d=ap.json
    Precedence: defaults < --config < command line.  `spec3c params STEP` lists them.
    """
    from .params_asdf import is_asdf_file, read_parameter_file
    from .single_step.run import run_step

    inputs, overrides = _single_step_args(step_name, args)
    if not inputs:
        raise click.UsageError("give at least one INPUT file (or an association)")
    ctx.args = overrides  # what _resolved_config reads the --steps.* items from
    config = _resolved_config(ctx, config_file, (), step=step_name)
    if output_dir is None:
        from_file = read_parameter_file(config_file).output_dir if config_file and is_asdf_file(config_file) else None
        output_dir = Path(from_file or ".")
    _check_writable(output_dir, "output folder")
    done = run_step(step_name, inputs, output_dir, config)
    for line in done.messages:
        click.echo(f"  {line}")
    click.echo(f"{step_name}: wrote {len(done.written)} product(s) to {output_dir}")
    for path in done.written:
        click.echo(f"  {path.name}")
    if not done.written:
        ctx.exit(1)


@main.command()
@click.argument("step_name", metavar="[STEP]", required=False)
@click.option("--all", "show_all", is_flag=True,
              help="Also list the reference's parameters spec3c does not implement (only their default is accepted).")
@_fail_cleanly
def params(step_name: str | None, show_all: bool) -> None:
    """List every step parameter with its default and help (of STEP, or of every calwebb_spec3 step).

    Parameter files: jwst ASDF files of calwebb_spec3 or of a step (as
    `strun --save-parameters` writes them) are read with --config; a parameter
    spec3c does not implement is refused unless it has the reference's
    default.  --save-parameters FILE (run, process, step) writes one that
    jwst reads.
    """
    from .params_asdf import describe_parameters

    current = None
    for info in describe_parameters(step_name):
        if not info.implemented and not show_all:
            continue
        if info.step != current:
            current = info.step
            click.echo(f"{current}:")
        mark = "" if info.implemented else "  [reference only]"
        click.echo(f"  --steps.{info.step}.{info.name}={info.default!r}{mark}")
        if info.help:
            click.echo(f"      {info.help}")


@main.command()
@click.argument("dir_a", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("dir_b", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--median-rel", type=float, default=1e-4, show_default=True,
              help="Largest accepted median |a-b|/|b| of an array or table column.")
@click.option("--max-rel", type=float, default=None, help="Largest accepted maximum |a-b|/|b| (default: not checked).")
@click.option("--nan-fraction", type=float, default=0.0, show_default=True,
              help="Largest accepted fraction of elements NaN in one file only.")
@click.option("--dq-fraction", type=float, default=0.0, show_default=True,
              help="Largest accepted fraction of DQ (integer) elements that differ.")
@click.option("--strict-headers", is_flag=True, help="Fail on any header difference too.")
@click.option("--ignore-keyword", multiple=True, metavar="KEY",
              help="Leave a header keyword out (repeatable; DATE, FILENAME, CAL_VER ... always are).")
@click.option("--ignore-hdu", multiple=True, metavar="EXTNAME",
              help="Leave an extension out (repeatable), e.g. PROVENANCE, WCS-TABLE, HDRTAB.")
@click.option("--verbose", "-v", is_flag=True, help="Every array and header difference, not only the failures.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the whole report as JSON.")
@_fail_cleanly
def compare(dir_a: Path, dir_b: Path, median_rel: float, max_rel: float | None,  # noqa: PLR0913
            nan_fraction: float, dq_fraction: float, strict_headers: bool, ignore_keyword: tuple[str, ...],
            ignore_hdu: tuple[str, ...], verbose: bool, json_path: Path | None) -> None:
    """Parity report of the FITS products of DIR_A against those of DIR_B (the reference).

    Files, HDUs and columns present in one folder only; shapes; for each
    array and table column the median and maximum relative difference and
    NaN-pattern differences; DQ differences and their bits; header keywords.
    Exit status 1 when a difference is above the tolerances, e.g. for CI:

    \b
      spec3c compare spec3c_out/ jwst_out/ --ignore-hdu PROVENANCE --max-rel 1e-3
    """
    from .compare import VOLATILE_KEYWORDS, Tolerances, compare_dirs

    tolerances = Tolerances(median_rel=median_rel, max_rel=max_rel, nan_fraction=nan_fraction,
                            dq_fraction=dq_fraction, strict_headers=strict_headers,
                            ignore_keywords=(*VOLATILE_KEYWORDS, *ignore_keyword), ignore_hdus=ignore_hdu)
    report = compare_dirs(dir_a, dir_b, tolerances)
    click.echo(report.render(verbose))
    if json_path is not None:
        json_path.write_text(report.to_json())
    if not report.ok:
        sys.exit(1)

def entry() -> None:
    """The ``spec3c`` program: :func:`main` in a process of its own, which may fork its workers.

    It ends without tearing down its modules (:func:`_exit_now`): that takes
    Python 0.1-0.2 s after a run, ~10 % of a small association's.
    """
    from .parallel import allow_fork_start

    allow_fork_start()
    try:
        main()
    except SystemExit as exc:  # click ends every command, the successful ones too, with sys.exit
        _exit_now(exc.code)
        raise


def _exit_now(code: object) -> None:
    """End the process with ``code`` (sys.exit's meaning) once its output and logs are out, if nothing else runs.

    Returns (the caller exits the usual way) while another thread or a child
    process is still running: they must end or be joined first.
    """
    import logging
    import multiprocessing
    import threading

    if multiprocessing.active_children() or any(
            t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        return
    if code is not None and not isinstance(code, int):  # sys.exit("message"): the message, status 1
        print(code, file=sys.stderr)
        code = 1
    logging.shutdown()  # flushes and closes the log file
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):  # a reader that went away (spec3c ... | head), a closed stream
        pass
    os._exit(code or 0)


if __name__ == "__main__":  # pragma: no cover
    entry()
