"""The HTML report renders in a real headless browser (Debian chromium) with every image loaded."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=5000",
]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (.ci/run installs Debian's chromium)")
def test_report_renders_with_every_image_loaded(mined_run, tmp_path):
    out, _ = mined_run
    report = out / "report.html"
    profile = tmp_path / "profile"
    dom = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", report.resolve().as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout
    m = re.search(r'data-images="(\d+)" data-broken="(\d+)"', dom)
    assert m, "the report's load script did not run in the browser"
    n_images, n_broken = int(m.group(1)), int(m.group(2))
    assert n_images >= 5 and n_broken == 0
    shot = tmp_path / "report.png"
    subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--window-size=1200,2400", f"--screenshot={shot}", report.resolve().as_uri()],
        capture_output=True, timeout=120,
    )
    assert shot.is_file() and shot.stat().st_size > 10_000
