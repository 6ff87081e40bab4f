"""``spec3c qa``: the QA page of a processed store, loaded in a real headless browser.

The browser is Debian's ``chromium`` (``.ci/run`` installs it when absent); on a
machine without it the browser tests are skipped, except in CI (``CI`` set),
where they fail.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from spec3c.cli import main
from spec3c.qa import collect_source, file_stems, write_qa
from spec3c.qa.collect import median_snr, white_light
from spec3c.qa.page import PageInfo, SourceRow, index_html, source_html, write_index
from spec3c.qa.plots import draw_source
from spec3c.results import STATUS, IfuCube
from spec3c.simulate import SimOptions, simulate
from spec3c.store import open_store
from spec3c.store.memory import MemoryStore

APERTURES = Path(__file__).resolve().parents[1] / "examples" / "extract1d_nirspec_fs.json"
#: a source name that would run script if it were not escaped
HOSTILE = "<img src=x onerror=\"document.title='pwned'\">&'\"<script>document.title='pwned'</script>"


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    if os.environ.get("CI"):
        pytest.fail("no chromium in CI: .ci/run installs Debian's chromium when it runs as root")
    pytest.skip("no headless browser: install Debian's chromium (apt-get install chromium, as .ci/run does)")


def browse(page: Path | str, tmp_path: Path, *args: str, query: str = "") -> tuple[str, str]:
    """Load ``page`` in headless chromium with ``args`` (``--dump-dom``, ``--screenshot=...``); returns
    (stdout, the browser's log), after asserting that the page logged nothing to the console."""
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    command = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--no-first-run", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
               "--virtual-time-budget=5000", *args, Path(page).resolve().as_uri() + query]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if re.search(r":CONSOLE[:(]|Uncaught", line)]
    assert not console, "\n".join(console)  # our pages log nothing: any console line is an error
    return done.stdout, done.stderr


def assert_non_blank(path: Path, min_size: int = 100) -> np.ndarray:
    """A PNG that is an image of something: big enough, many colours, not a flat or white field."""
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape[0] >= min_size and pixels.shape[1] >= min_size, (path, pixels.shape)
    colours = pixels[..., 0].astype(np.uint32) << 16 | pixels[..., 1].astype(np.uint32) << 8 | pixels[..., 2]
    assert len(np.unique(colours)) > 16, path
    rgb = pixels.astype(np.float64)
    assert rgb.std() > 10, path
    assert np.mean(rgb.min(axis=2) < 200) > 0.01, path  # more than 1% of the pixels are not near white
    return rgb


class _Links(HTMLParser):
    """The ``<img src>`` and ``<a href>`` of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img" and values.get("src"):
            self.images.append(str(values["src"]))
        if tag == "a" and values.get("href"):
            self.links.append(str(values["href"]))


def _links(page: Path) -> _Links:
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def _row_sources(dom: str) -> list[str]:
    """The source of each table row, in page order, from a dumped DOM."""
    return re.findall(r'<tr[^>]*><td data-value="([^"]*)">', dom)


# -- the data: a NIRSpec fixed-slit association processed end to end -------------------------------

@pytest.fixture(scope="module")
def fs_qa(tmp_path_factory):
    root = tmp_path_factory.mktemp("qa")
    sim = simulate("nirspec-fs", root / "in", SimOptions(seed=2, n_exposures=2, n_columns=200))
    store = _processed(sim.asn_path, root / "prog.store", f"--steps.extract_1d.override_extract1d={APERTURES}")
    res = CliRunner().invoke(main, ["qa", str(store), "-o", str(root / "qa"), "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert "3 sources, 9 figures" in res.output
    return root / "qa", store


def _processed(asn: Path, store: Path, *options: str) -> Path:
    """``spec3c ingest`` and ``spec3c process`` (no export: the page reads the store)."""
    runner = CliRunner()
    res = runner.invoke(main, ["ingest", str(asn), "--store", str(store)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["process", str(store), "--workers", "1", *options])
    assert res.exit_code == 0, res.output
    return store


def test_every_image_is_present_and_non_blank(fs_qa):
    folder, _ = fs_qa
    index = folder / "index.html"
    pages = [folder / link for link in _links(index).links]
    assert len(pages) == 6 and all(p.is_file() for p in pages)  # name and thumbnail link to each page
    images = {(folder / src).resolve() for src in _links(index).images}
    for page in pages:
        images |= {(page.parent / src).resolve() for src in _links(page).images}
    assert {p.name for p in images} == {f"{s}_{k}.png" for s in "123" for k in ("s2d", "x1d", "outliers")}
    for path in images:
        assert_non_blank(path)


def test_the_page_loads_and_looks_right_in_a_browser(fs_qa, tmp_path):
    folder, _ = fs_qa
    shot = tmp_path / "index.png"
    browse(folder / "index.html", tmp_path, f"--screenshot={shot}", "--window-size=1400,900")
    rgb = assert_non_blank(shot)
    # the thumbnails were drawn: the right-hand column holds the spectra's colours, not only text
    right = rgb[:, int(rgb.shape[1] * 0.75):]
    assert np.mean(np.abs(right[..., 2] - right[..., 0]) > 40) > 0.001
    dom, _ = browse(folder / "index.html", tmp_path, "--dump-dom")
    assert 'data-qa-ready="1"' in dom  # the sorting script ran to its end
    assert _row_sources(dom) == ["1", "2", "3"]
    shot = tmp_path / "source.png"  # a source's page (its images are checked one by one above)
    browse(folder / "sources" / "3.html", tmp_path, f"--screenshot={shot}", "--window-size=1000,1400")
    assert_non_blank(shot)


def test_images_load_and_the_table_sorts_in_the_browser(fs_qa, tmp_path):
    """A copy of the index with a probe script: every image decodes in the browser, and clicking
    the S/N header sorts the rows (ascending, then descending)."""
    folder, store_path = fs_qa
    probe = """<script>
    window.addEventListener("load", function () {
      var out = {images: Array.prototype.map.call(document.images, function (img) {
        return [img.getAttribute("src"), img.complete, img.naturalWidth, img.naturalHeight]; })};
      var header = document.querySelector('th[data-key="snr"]');
      var order = function () { return Array.prototype.map.call(document.querySelectorAll("#sources tbody tr"),
        function (row) { return row.cells[0].getAttribute("data-value"); }); };
      header.click(); out.ascending = order(); out.first = header.getAttribute("aria-sort");
      header.click(); out.descending = order(); out.second = header.getAttribute("aria-sort");
      var pre = document.createElement("pre"); pre.id = "probe"; pre.textContent = JSON.stringify(out);
      document.body.appendChild(pre);
    });
    </script></body>"""
    text = (folder / "index.html").read_text(encoding="utf-8").replace('loading="lazy"', 'loading="eager"')
    (folder / "probe.html").write_text(text.replace("</body>", probe), encoding="utf-8")
    dom, _ = browse(folder / "probe.html", tmp_path, "--dump-dom")
    found = json.loads(html.unescape(re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S).group(1)))
    assert len(found["images"]) == 3
    assert all(complete and width > 100 and height > 50 for _, complete, width, height in found["images"])
    with open_store(store_path) as store:
        snr = {s: collect_source(store, s).snr for s in store.sources()}
    assert found["ascending"] == sorted(snr, key=snr.__getitem__) and found["first"] == "ascending"
    assert found["descending"] == found["ascending"][::-1] and found["second"] == "descending"
    # and a link can open the table sorted
    dom, _ = browse(folder / "index.html", tmp_path, "--dump-dom", query="?sort=flagged&order=desc")
    with open_store(store_path) as store:
        flagged = {s: collect_source(store, s).flagged_fraction for s in store.sources()}
    assert _row_sources(dom) == sorted(flagged, key=flagged.__getitem__, reverse=True)


def test_source_names_are_escaped(tmp_path):
    rows = [SourceRow(HOSTILE, "x.html", steps={"extract_1d": ("COMPLETE", "<b>ok</b>")}, snr=3.0, processed=True),
            SourceRow("2", "2.html", snr=None)]
    text = index_html(rows, PageInfo("<title>", "nirspec-fs", "/a/<b>", "0"))
    assert "<script>document" not in text and "<img src=x" not in text and "<b>ok" not in text
    assert text.count("<script>") == 1  # the page's own
    write_index(rows, PageInfo("t", "m", "s", "0"), tmp_path)
    dom, _ = browse(tmp_path / "index.html", tmp_path, "--dump-dom")
    assert 'data-qa-ready="1"' in dom and "pwned" not in dom.split("</title>")[0]
    assert html.unescape(_row_sources(dom)[0]) == HOSTILE  # the name is data, shown as it is


# -- what is read, whatever the mode ---------------------------------------------------------------

def test_the_figures_show_what_the_store_has(fs_qa):
    _, store_path = fs_qa
    with open_store(store_path) as store:
        qa = collect_source(store, "1")
        status = store.get_result("1", STATUS)[1]
    assert qa.kind == "s2d" and len(qa.images) == 1 and qa.images[0].aperture is not None
    x0, x1, y0, y1 = qa.images[0].aperture
    assert x1 - x0 == qa.images[0].data.shape[1]  # the whole s2d along the dispersion
    assert 0 < y1 - y0 < qa.images[0].data.shape[0]
    assert [s.label for s in qa.spectra] == ["x1d"] and not qa.exposure_spectra
    assert len(qa.outliers) == 2
    assert qa.n_flagged == sum(status["steps"]["outlier_detection"]["n_flagged"].values())
    assert qa.snr is not None and qa.snr > 10
    assert qa.steps["resample_spec"][0] == "COMPLETE"


def test_slitless_has_no_s2d_panel(tmp_path):
    """MIRI LRS slitless: no s2d; the c1d over each exposure's x1d, and the outlier maps."""
    sim = simulate("miri-lrs-slitless", tmp_path / "in", SimOptions(seed=1, n_exposures=2))
    store_path = _processed(sim.asn_path, tmp_path / "prog.store")
    report = write_qa(store_path, tmp_path / "qa", workers=1)
    (row,) = report.rows
    assert set(row.images) == {"x1d", "outliers"} and not report.failed
    with open_store(store_path) as store:
        qa = collect_source(store, "1")
    assert [s.label for s in qa.spectra] == ["c1d order 1"] and len(qa.exposure_spectra) == 2
    assert qa.outliers[0].data.shape[0] < qa.outliers[0].data.shape[1]  # turned: dispersion along x
    for name in row.images.values():
        assert_non_blank(tmp_path / "qa" / "sources" / name)


def test_ifu_cube_white_light(tmp_path):
    store = MemoryStore()
    sci = np.arange(4 * 3 * 5, dtype=np.float32).reshape(4, 3, 5)
    sci[:, 0, 0] = np.nan
    sci[1, 1, 1] = np.nan
    cube = IfuCube("jw1_ch1-short", np.linspace(5.0, 5.3, 4), {"shape": [4, 3, 5], "tiles": [[0, 4]]})
    cube.save(store, "1")
    cube.save_tile(store, "1", 0, {"sci": sci, "err": sci, "dq": np.zeros(sci.shape, np.uint32), "wmap": sci})
    store.put_result("1", STATUS, {}, {"steps": {"cube_build": {"status": "COMPLETE", "message": "1 cube"}}})
    np.testing.assert_allclose(white_light(store, "1", cube), _nanmean(sci))
    qa = collect_source(store, "1")
    assert qa.kind == "s3d" and len(qa.images) == 1 and not qa.spectra and not qa.outliers
    drawn = draw_source(qa, tmp_path, "1")
    assert drawn == {"s3d": "1_s3d.png"}
    assert_non_blank(tmp_path / "1_s3d.png")


def test_a_failed_source_shows_its_error(tmp_path):
    store = MemoryStore()
    store.put_result("7", STATUS, {}, {"error": "ValueError: no <good> pixels",
                                       "steps": {"exp_to_source": {"status": "FAILED"}}})
    qa = collect_source(store, "7")
    assert qa.processed and qa.error == "ValueError: no <good> pixels" and qa.snr is None
    assert draw_source(qa, tmp_path, "7") == {}
    row = SourceRow.of(qa, "7.html", {}, ("exp_to_source", "extract_1d"))
    text = index_html([row], PageInfo("t", "m", "s", "0", ("exp_to_source", "extract_1d")))
    assert '<tr class="failed">' in text and "no &lt;good&gt; pixels" in text and "1 sources, 1 failed" in text
    assert "processing failed: ValueError: no &lt;good&gt; pixels" in source_html(row)


def _nanmean(cube: np.ndarray) -> np.ndarray:
    """Mean over axis 0 of the finite values; NaN where there is none (without numpy's warning)."""
    good = np.isfinite(cube)
    mean = np.where(good, cube, 0).sum(axis=0) / np.maximum(good.sum(axis=0), 1)
    return np.where(good.any(axis=0), mean, np.nan)


# -- small pieces -------------------------------------------------------------------------------------

def test_median_snr():
    value, error = np.array([10.0, 20.0, np.nan, 5.0, 1.0]), np.array([1.0, 2.0, 1.0, 0.0, 1.0])
    assert median_snr(value, error) == 10.0  # NaN value and zero error left out: median of 10, 10, 1
    assert median_snr(value, error, np.array([0, 0, 0, 0, 1], np.uint32)) == 10.0
    assert median_snr(np.array([np.nan]), np.array([1.0])) is None


def test_file_stems_are_safe_and_distinct():
    stems = file_stems(["1", "12345_1", "a/b", "a_b", "A_B", "../x", ""])
    assert stems["1"] == "1" and stems["12345_1"] == "12345_1" and stems["a_b"] == "a_b"
    assert len({s.lower() for s in stems.values()}) == len(stems)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", s) for s in stems.values())


def test_cli_chosen_sources_and_errors(fs_qa, tmp_path):
    _, store_path = fs_qa
    runner = CliRunner()
    res = runner.invoke(main, ["qa", str(store_path), "-o", str(tmp_path / "one"), "--sources", "2", "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "one" / "sources").glob("*.html")) == ["2.html"]
    res = runner.invoke(main, ["qa", str(store_path), "-o", str(tmp_path / "bad"), "--sources", "99"])
    assert res.exit_code == 1 and "unknown source(s) 99" in res.output


def test_missing_matplotlib_says_how_to_install(fs_qa, tmp_path, monkeypatch):
    _, store_path = fs_qa
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    res = CliRunner().invoke(main, ["qa", str(store_path), "-o", str(tmp_path), "--workers", "1"])
    assert res.exit_code == 1 and "pip install 'spec3c[qa]'" in res.output
