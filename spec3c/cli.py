"""The ``spec3c`` command line.

Heavy modules are imported inside each command so ``spec3c --help`` is fast.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import __version__
from .errors import Spec3cError

if TYPE_CHECKING:
    from tqdm import tqdm


def _fail_cleanly(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn spec3c errors into a one-line message and exit status 1."""
    import functools

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Spec3cError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper


class _Bar:
    """A tqdm progress bar on stderr, fed by ``(label, done, total)`` callbacks."""

    def __init__(self, desc: str, unit: str) -> None:
        self.desc, self.unit = desc, unit
        self.bar: tqdm | None = None

    def __call__(self, label: str, done: int, total: int) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=total, desc=self.desc, unit=self.unit, file=sys.stderr, leave=True)
        self.bar.set_postfix_str(label[-40:], refresh=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="spec3c")
def main() -> None:
    """spec3c: JWST stage-3 spectroscopy (calwebb_spec3) over an array store.

    \b
    Typical use:
      spec3c simulate nirspec-mos --output-dir sim      # make test data
      spec3c ingest sim/asn.json --store prog.store     # read the exposures once
      spec3c ls prog.store                              # what is in the store
      spec3c show prog.store --source 12345_1           # one source's cutouts
    """


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
@_fail_cleanly
def simulate(mode: str, output_dir: Path, seed: int, n_exposures: int, n_sources: int | None,  # noqa: PLR0913
             n_columns: int | None, nod_subtracted: bool, moving_target: bool, with_background: int) -> None:
    """Write a simulated stage-2 dataset for MODE.

    \b
    Modes:
      nirspec-fs         NIRSpec fixed slits (MultiSlitModel, 3-point nod)
      nirspec-mos        NIRSpec MOS slitlets (MultiSlitModel, 3-shutter nod)
      miri-lrs-fs        MIRI LRS fixed slit (ImageModel, 2-point along-slit nod)
      miri-lrs-slitless  MIRI LRS slitless, non-TSO (ImageModel, SLITLESSPRISM)

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
                             with_background=with_background)
        res = run(mode, output_dir, options, progress=lambda done, total: bar(mode, done, total))
    finally:
        bar.close()
    click.echo(f"association: {res.asn_path}")
    click.echo(f"exposures:   {len(res.cal_paths)} files in {output_dir}")
    click.echo(f"truth:       {res.truth_path}")


@main.command()
@click.argument("asn", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--store", "store_path", required=True, type=click.Path(path_type=Path),
              help="Store folder (created if missing).")
@click.option("--backend", type=click.Choice(["tiledb", "hdf5"]), default=None,
              help="Store backend of a new store (default tiledb); an existing store keeps its own.")
@click.option("--replace", is_flag=True, help="Overwrite exposures whose file changed since they were ingested.")
@click.option("--allow-outside-paths", is_flag=True,
              help="Accept members (and product names) outside the association's folder.")
@_fail_cleanly
def ingest(asn: Path, store_path: Path, backend: str | None, replace: bool, allow_outside_paths: bool) -> None:
    """Read the exposures of association ASN into a store.

    Per-pixel wavelength, RA/Dec and slit coordinates are evaluated once from
    each input gwcs.  Each exposure is written atomically; files already
    ingested (same sha256) are skipped, so re-running after an interruption
    completes the store.
    """
    from .ingest import ingest as run

    bar = _Bar("ingest", "exposure")
    try:
        report = run(asn, store_path, backend=backend, replace=replace,
                     allow_outside=allow_outside_paths, progress=bar)
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
    from .modes.registry import MODES

    for mode in MODES:
        click.echo(f"{mode.name}: {', '.join(mode.exp_types)}")
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


def _step_overrides(ctx: click.Context) -> list[str]:
    """``--steps.STEP.PARAM=VALUE`` (or ``--steps.STEP.PARAM VALUE``) items left by click."""
    items, args = [], list(ctx.args)
    while args:
        arg = args.pop(0)
        if not arg.startswith("--steps."):
            raise click.UsageError(f"unexpected argument {arg!r}; step parameters look like --steps.STEP.PARAM=VALUE")
        if "=" not in arg:
            if not args:
                raise click.UsageError(f"{arg} needs a value")
            arg = f"{arg}={args.pop(0)}"
        items.append(arg)
    return items


def _resolved_config(ctx: click.Context, config_file: Path | None, skip: tuple[str, ...]):  # type: ignore[no-untyped-def]
    from .config import parse_cli_overrides, resolve_config

    return resolve_config(config_file, parse_cli_overrides(_step_overrides(ctx)), skip)


_PROCESS_CONTEXT = {"ignore_unknown_options": True, "allow_extra_args": True}


def _process_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--sources", default=None, help="Comma-separated source keys (default: all)."),
        click.option("--workers", type=int, default=None, help="Parallel source workers (default: CPU count)."),
        click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="Step parameter file (TOML or JSON, [steps.STEP] tables)."),
        click.option("--skip", multiple=True, help="Skip a step (repeatable), e.g. --skip outlier_detection."),
        click.option("--force", is_flag=True, help="Recompute sources that are already complete."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _run_process(ctx: click.Context, store_path: Path, sources: str | None, workers: int | None,
                 config_file: Path | None, skip: tuple[str, ...], force: bool) -> None:  # noqa: PLR0913
    from .process import process_store

    config = _resolved_config(ctx, config_file, skip)
    chosen = [s.strip() for s in sources.split(",") if s.strip()] if sources else None
    bar = _Bar("process", "source")
    try:
        report = process_store(store_path, sources=chosen, config=config, workers=workers, force=force,
                               progress=bar)
    finally:
        bar.close()
    failed = report.failed
    click.echo(f"processed {len(report.processed)} sources ({len(failed)} failed), "
               f"{len(report.already_done)} already complete, in {report.seconds:.1f} s")
    for r in failed:
        click.echo(f"  FAILED {r.source}: {r.error}", err=True)
    if failed:
        ctx.exit(1)


@main.command(context_settings=_PROCESS_CONTEXT)
@click.argument("store_path", metavar="STORE", type=click.Path(exists=True, path_type=Path))
@_process_options
@click.pass_context
@_fail_cleanly
def process(ctx: click.Context, store_path: Path, sources: str | None, workers: int | None,
            config_file: Path | None, skip: tuple[str, ...], force: bool) -> None:  # noqa: PLR0913
    """Run the stage-3 steps on every source of STORE (or --sources).

    \b
    Each mode runs the reference's plan after exp_to_source (`spec3c modes`
    lists them), e.g. NIRSpec FS/MOS: assign_mtwcs, master_background,
    outlier_detection, pixel_replace (skipped by default), resample_spec,
    extract_1d.  Parameters and defaults are the reference's; override any of them with
    --steps.STEP.PARAM=VALUE, e.g.
      --steps.extract_1d.override_extract1d=apertures.json
      --steps.resample_spec.pixfrac=0.8  --steps.outlier_detection.snr="3.0 2.0"
    Sources run in parallel processes; an interrupted run is completed by
    running again (--force recomputes).  Status and parameters are stored
    per source.
    """
    _run_process(ctx, store_path, sources, workers, config_file, skip, force)


def _export(store_path: Path, output_dir: Path, suffix: str, sources: str | None,
            workers: int | None = None) -> list[Path]:
    from .products import ProductNaming, export_store
    from .results import load_association
    from .store import open_store

    with open_store(store_path) as store:
        try:
            asn = load_association(store)
        except KeyError as exc:
            raise click.ClickException(f"{store_path}: no association recorded; re-run `spec3c ingest`") from exc
    naming = ProductNaming(asn["product_name"], asn["asn_id"], asn.get("exp_type"), asn.get("table_name"))
    suffixes = [s.strip() for s in suffix.split(",") if s.strip()]
    chosen = [s.strip() for s in sources.split(",") if s.strip()] if sources else None
    output_dir.mkdir(parents=True, exist_ok=True)
    bar = _Bar("export", "source")
    try:
        return export_store(store_path, output_dir, naming, suffixes, chosen, progress=bar, workers=workers)
    finally:
        bar.close()


@main.command()
@click.argument("store_path", metavar="STORE", type=click.Path(exists=True, path_type=Path))
@click.option("--output-dir", "-o", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the FITS products.")
@click.option("--suffix", default="cal,crf,s2d,x1d,c1d", show_default=True,
              help="Products to write (those that exist for each source).")
@click.option("--sources", default=None, help="Comma-separated source keys (default: all).")
@click.option("--workers", type=int, default=None, help="Parallel export processes (default: CPU count).")
@_fail_cleanly
def export(store_path: Path, output_dir: Path, suffix: str, sources: str | None, workers: int | None) -> None:
    """Write the standard FITS products of STORE, named as the reference names them."""
    written = _export(store_path, output_dir, suffix, sources, workers)
    click.echo(f"wrote {len(written)} products to {output_dir}")


def _single_source(asn: Path) -> bool:
    """True when the association is processed as one source (its mode's naming says so)."""
    import json

    from astropy.io import fits

    from .modes.registry import mode_for

    try:
        member = json.loads(asn.read_text())["products"][0]["members"][0]["expname"]
        return mode_for(fits.getval(asn.parent / member, "EXP_TYPE")).naming.whole_association
    except Exception:  # noqa: BLE001 - only a performance hint; ingest reports bad input properly
        return False


@main.command(context_settings=_PROCESS_CONTEXT)
@click.argument("asn", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--output-dir", "-o", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the products; the store is kept there as spec3c.store.")
@click.option("--backend", type=click.Choice(["tiledb", "hdf5"]), default=None, help="Store backend (default tiledb).")
@_process_options
@click.pass_context
@_fail_cleanly
def run(ctx: click.Context, asn: Path, output_dir: Path, backend: str | None, sources: str | None,  # noqa: PLR0913
        workers: int | None, config_file: Path | None, skip: tuple[str, ...], force: bool) -> None:
    """Ingest ASN, process every source and export the products into OUTPUT_DIR."""
    from .ingest import ingest as run_ingest
    from .parallel import shared_pool
    from .products.export import DEFAULT_SUFFIXES

    store_path = output_dir / "spec3c.store"
    output_dir.mkdir(parents=True, exist_ok=True)
    # one warm worker pool for process and export, starting while ingest runs (not for one-source modes)
    warm = ("spec3c.process", "spec3c.products.export")  # what process and export run in the workers
    with contextlib.nullcontext() if _single_source(asn) else shared_pool(workers, warm):
        bar = _Bar("ingest", "exposure")
        try:
            report = run_ingest(asn, store_path, backend=backend, progress=bar)
        finally:
            bar.close()
        click.echo(f"ingest: {len(report.ingested)} new, {len(report.unchanged)} unchanged exposures")
        _run_process(ctx, store_path, sources, workers, config_file, skip, force)
        written = _export(store_path, output_dir, ",".join(DEFAULT_SUFFIXES), sources, workers)
    click.echo(f"wrote {len(written)} products to {output_dir}:")
    for path in written:
        click.echo(f"  {path.name}")


if __name__ == "__main__":  # pragma: no cover
    main()
