"""The HTML report in a real headless browser: its tables are there and every embedded figure decodes."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from spark_eval.config import ReportConfig
from spark_eval.report import write_report
from spark_eval.stats import load_runs
from tests.fakes.runs import synthetic_experiment

BROWSER = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                if shutil.which(name)), None)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no headless Chromium here (apt-get install chromium)")

# Added to a copy of the report (which itself has no script): after load, write what the browser decoded.
PROBE = """<script>window.addEventListener("load", () => {
  const images = [...document.images].map(i => ({alt: i.alt, width: i.naturalWidth, done: i.complete}));
  document.body.setAttribute("data-probe", JSON.stringify({images, tables: document.querySelectorAll("table").length,
    details: document.querySelectorAll("details").length, title: document.title}));
});</script>"""


def test_report_renders_with_tables_and_decoded_figures(tmp_path):
    synthetic_experiment(tmp_path / "runs", ["qwen3-coder-30b", "claude-haiku-4.5"], n=14)
    written = write_report(load_runs(str(tmp_path / "runs" / "*")), ReportConfig(bootstrap=200), tmp_path / "out", {})
    pngs = sorted(p.stem for p in written if p.suffix == ".png")
    page = tmp_path / "probe.html"
    page.write_text((tmp_path / "out" / "report.html").read_text().replace("</body>", PROBE + "</body>"))
    # no background networking: a closed network refuses Chromium's own connections, many at a time
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
             "--disable-background-networking", "--disable-component-update", f"--user-data-dir={tmp_path / 'p'}"]
    dom = subprocess.run([BROWSER, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=180).stdout
    found = re.search(r'data-probe="([^"]*)"', dom)
    assert found, dom[:500]
    probe = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert sorted(i["alt"] for i in probe["images"]) == pngs
    assert all(i["done"] and i["width"] > 100 for i in probe["images"]), probe["images"]
    assert probe["tables"] >= 5 and probe["details"] >= 14
    assert probe["title"] == "spark_eval report: synthetic"
