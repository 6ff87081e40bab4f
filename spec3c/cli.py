"""The ``spec3c`` command line.

Heavy modules are imported inside each command so ``spec3c --help`` is fast.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from . import __version__
from .errors import Spec3cError


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
        self.desc, self.unit, self.bar = desc, unit, None

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
@click.option("--n-columns", type=int, default=None, help="Cutout length along dispersion (mode default if omitted).")
@click.option("--nod-subtracted/--no-nod-subtracted", default=True, show_default=True,
              help="Subtract the other nods as stage 2 does (removes the sky).")
@_fail_cleanly
def simulate(mode: str, output_dir: Path, seed: int, n_exposures: int, n_sources: int | None,
             n_columns: int | None, nod_subtracted: bool) -> None:  # noqa: PLR0913
    """Write a simulated stage-2 dataset for MODE (nirspec-fs, nirspec-mos).

    Produces _cal.fits exposures (stdatamodels MultiSlitModel with a gwcs per
    slit), a spec3 association and a truth file (true spectra, injected
    cosmic rays).
    """
    from .simulate import MODES
    from .simulate import simulate as run

    if mode not in MODES:
        raise click.BadParameter(f"unknown mode {mode!r}; choose from {', '.join(MODES)}", param_hint="MODE")
    bar = _Bar("simulate", "exposure")
    try:
        res = run(mode, output_dir, seed=seed, n_exposures=n_exposures, n_sources=n_sources,
                  n_columns=n_columns, nod_subtracted=nod_subtracted,
                  progress=lambda done, total: bar(mode, done, total))
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


if __name__ == "__main__":  # pragma: no cover
    main()
