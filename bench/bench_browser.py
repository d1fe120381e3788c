"""The report's problem browser at full size: 1000 problems x 7 conditions (3 models x none/spark and the
reference solutions), 7000 records with text about as long as real ones, in headless Chromium.

    PYTHONPATH=. python bench/bench_browser.py                  # 1000 problems, 3 page loads
    PYTHONPATH=. python bench/bench_browser.py --problems 200 --loads 1

Prints the size of report.html (and of its parts: the browser's JSON, the figures), the time to write the report
(statistics, figures, HTML; the runs already loaded), and what the page measures itself (performance marks and
navigation timing, read back over the DevTools protocol): the load up to the list being drawn, a filter, a first and
a second text search, opening a problem with every condition side by side, and going back to the list.
"""
from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from pathlib import Path

from spark_eval.config import ReportConfig
from spark_eval.report import write_report
from spark_eval.report.browser import browser_section
from spark_eval.stats import analyse, load_runs
from tests.fakes.runs import synthetic_experiment, synthetic_prompts
from tests.integration.test_report_browser import BROWSER, HASHCHANGE, Chromium

MODELS = ("qwen3-coder-30b", "claude-haiku-4.5", "gpt-5-codex")

# In the page: the load as the page saw it, then each step timed with performance.now() around it (a filter and
# a search run synchronously in their change event; opening and going back run in the hashchange event, timed up
# to its end and to the next animation frame with the page laid out).
LOAD = """(() => { const nav = performance.getEntriesByType("navigation")[0];
  const mark = (name) => performance.getEntriesByName(name)[0].startTime;
  return {html_parsed_to_script: mark("browser-start"), json_parse: mark("browser-parsed") - mark("browser-start"),
          list_drawn: mark("browser-listed"), dom_content_loaded: nav.domContentLoadedEventEnd,
          load_event: nav.loadEventEnd, rows: document.querySelectorAll("#browser-list tbody tr").length}; })()"""
FILTER = """((filters) => { const form = document.getElementById("browser-filters"), start = performance.now();
  for (const [name, value] of Object.entries(filters)) form.elements[name].value = value;
  form.dispatchEvent(new Event("change"));
  return {ms: performance.now() - start, rows: Number(document.getElementById("browser-count").dataset.problems)};
})"""
HASHCHANGED = HASHCHANGE.replace("setTimeout(done, 0)", "done()")
STEP = f"""((act) => {{ const changed = {HASHCHANGED}, start = performance.now();
  act(); return changed.then(() => {{ const handled = performance.now() - start;
    return new Promise(done => requestAnimationFrame(() => {{ void document.body.offsetHeight;  // forces layout
      done({{handled, laid_out: performance.now() - start, hash: location.hash}}); }})); }}); }})"""
OPEN = "() => document.querySelector('#browser-list tbody tr a').click()"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=1000)
    parser.add_argument("--loads", type=int, default=3, help="fresh page loads measured (the median is printed)")
    args = parser.parse_args()
    if BROWSER is None:
        raise SystemExit("no headless Chromium here (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        synthetic_experiment(root / "runs", MODELS, n=args.problems, texts=True)
        runs = load_runs(str(root / "runs" / "*"))
        start = time.monotonic()
        options, prompts = ReportConfig(bootstrap=2000), synthetic_prompts(args.problems)
        write_report(runs, options, root / "report", prompts)
        written = time.monotonic() - start
        analysis = analyse(runs, options)
        start = time.monotonic()
        browser_section(analysis, prompts)
        section = time.monotonic() - start
        page = root / "report" / "report.html"
        html = page.read_text(encoding="utf-8")
        data = re.search(r"<script type='application/json' id='browser-data'>(.*?)</script>", html, re.S).group(1)
        figures = sum(len(m) for m in re.findall(r"data:image/png;base64,[A-Za-z0-9+/=]*", html))
        print(f"{len(runs)} conditions, {sum(len(r.records) for r in runs)} records, {args.problems} problems")
        print(f"write_report: {written:6.2f} s (statistics with 2000 bootstrap resamples, figures, HTML), of which "
              f"the browser's data and script {section:.2f} s")
        print(f"report.html: {len(html.encode()) / 1e6:.1f} MB (browser JSON {len(data.encode()) / 1e6:.1f} MB, "
              f"figures {figures / 1e6:.1f} MB)")
        rows = [_measure(page, root / f"profile{k}") for k in range(args.loads)]
    print(f"in headless Chromium, median of {args.loads} fresh loads (ms after navigation start unless a step):")
    for name in rows[0]:
        values = [row[name] for row in rows]
        print(f"  {name:44s} {statistics.median(values):8.1f}   (min {min(values):.1f}, max {max(values):.1f})")


def _measure(page: Path, profile: Path) -> dict[str, float]:
    browser = Chromium(BROWSER, profile)
    try:
        start = time.monotonic()
        browser.open(page.as_uri())
        wall = (time.monotonic() - start) * 1000
        load = browser.evaluate(LOAD)
        assert load["rows"] > 0, load
        narrowed = browser.evaluate(f"({FILTER})({{library: 'Pandas', status: 'failed'}})")
        cold = browser.evaluate(f"({FILTER})({{library: '', status: '', q: 'groupby merge'}})")
        warm = browser.evaluate(f"({FILTER})({{q: 'pivot sort'}})")
        opened = browser.evaluate(f"({STEP})({OPEN})")
        back = browser.evaluate(f"({STEP})(() => history.back())")
        assert opened["hash"].startswith("#problem=") and back["hash"].startswith("#list?"), (opened, back)
    finally:
        browser.close()
    return {"navigate to load event (wall, Python)": wall,
            "script starts (HTML parsed)": load["html_parsed_to_script"],
            "JSON.parse (step)": load["json_parse"], "list of every problem drawn": load["list_drawn"],
            "DOMContentLoaded end": load["dom_content_loaded"], "load event end": load["load_event"],
            f"filter Pandas+failed (step, {narrowed['rows']} rows)": narrowed["ms"],
            f"first text search (step, {cold['rows']} rows)": cold["ms"],
            f"second text search (step, {warm['rows']} rows)": warm["ms"],
            "open a problem (step, handler)": opened["handled"], "open a problem (step, laid out)": opened["laid_out"],
            "back to the list (step, handler)": back["handled"], "back to the list (step, laid out)": back["laid_out"]}


if __name__ == "__main__":
    main()
