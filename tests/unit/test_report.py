"""Paper tables (exact text), the HTML report, and stage=report through the real command line."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pandas as pd
import pytest

from spark_eval.config import PROJECT_ROOT, ReportConfig
from spark_eval.report import write_report
from spark_eval.report.published import PAPER_N, paper_row, published_quality
from spark_eval.report.render import latex, markdown
from spark_eval.report.tables import counts_table, helpfulness_table, quality_table
from spark_eval.stats import analyse, load_runs
from spark_eval.stats.bootstrap import cluster_ci
from tests.fakes.runs import record, synthetic_experiment, write_run

OPTIONS = ReportConfig()
BANDS_GIVEN = ("EXTREMELY HELPFUL", "EXTREMELY HELPFUL", "GOOD", "FAIR")


@pytest.fixture
def paper_runs(tmp_path):
    """Constant scores per condition, so every interval is a point and the table can be written out by hand."""
    def run(model, memory, scores, passes, leaky=False, bands=(None,) * 4):
        write_run(tmp_path / f"{model}__{memory}__s0", [
            record(p, model, memory, scores=scores, passed=bool(ok), band=band)
            for p, (ok, band) in enumerate(zip(passes, bands))], leaky=leaky)

    run("qwen3-coder-30b-a3b", "none", [4], [1, 1, 0, 1])
    run("qwen3-coder-30b-a3b", "spark", [5], [1, 1, 1, 1], leaky=True, bands=BANDS_GIVEN)
    with (tmp_path / "qwen3-coder-30b-a3b__spark__s0" / "records.jsonl").open("a") as f:  # no advice; an outage
        for extra in (record(4, "qwen3-coder-30b-a3b", "spark", scores=[5], advice_error="recommendation unusable"),
                      record(0, "qwen3-coder-30b-a3b", "spark", epoch=1, error="APIStatusError: 503")):
            f.write(json.dumps(extra) + "\n")
    run("claude-haiku-4-5", "none", [4, 3], [1, 0, 0, 1])
    run("my-model", "none", [3], [1, 0, 0, 1])
    run("reference", "none", [4, 5], [1, 1, 1, 1])
    return analyse(load_runs(str(tmp_path / "*")), OPTIONS)


QUALITY_MD = """\
## Pass@1 and mean code quality (1-5) per model, without and with Spark

| Model | Condition | Pass@1 | Quality | 95% CI | Judge signal | Paper | Ours - paper | n | Paper n | Errors | Leaky |
| --- | --- | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |
| Qwen3-Coder-30B | without Spark | 75.0% | 4.00 | [4.00, 4.00] | too few to tell | 4.23 | -0.23 | 4 | 1000 | 0 |  |
| Qwen3-Coder-30B | with Spark | 100.0% | 5.00 | [5.00, 5.00] | too few to tell | 4.89 | +0.11 | 5 | 1000 | 1 | yes |
| Claude Haiku 4.5 | without Spark | 50.0% | 3.50 | [3.50, 3.50] | too few to tell | 4.50 | -1.00 | 4 | 1000 | 0 |  |
| my-model | without Spark | 50.0% | 3.00 | [3.00, 3.00] | too few to tell | - | - | 4 | - | 0 |  |
| Human reference | DS-1000 solutions | 100.0% | 4.50 | [4.50, 4.50] | too few to tell | 4.28 | +0.22 | 4 | 1000 | 0 |  |

Quality: mean 1-5 score of quality/fake-judge per problem (its verdicts, then the problem's epochs, repeats and \
seeds averaged). 95% CI: bootstrap over origin families (2000 resamples, seed 0). Pass@1: share of a problem's \
records passing DS-1000's tests, averaged over problems. Quality and pass@1 use the same records, those without an \
error that hold a quality verdict, so n counts the same problems for both; Errors: records left out because they \
ended in an error. Paper: Tablan et al. (2025), arXiv:2511.08301. Paper n: the problems behind \
the paper's figure (it ran all 1000 DS-1000 problems for each coder and condition), beside ours; '-' where the row \
has no paper figure.

Judge signal: does quality/fake-judge separate the records that pass DS-1000's tests from those that fail? Its \
AUROC against execution on the row's records, with a 95% CI over origin families (the judge validity table): \
'signal' when the CI lies above 0.5; 'no signal on these records' when it covers 0.5, and then the row's quality \
mean and every quality comparison resting on it measure nothing that execution confirms; 'inverted' below 0.5; \
'too few to tell' with fewer than 5 passing or failing records. Over every coder's records pooled, 17 (12 passing): \
AUROC 0.78 [0.68, 0.98], signal.

Leaky: the memory was built with access to reference answers (the paper's synthetic experience); \
its numbers are not a fair test.
"""

COUNTS_MD = """\
## Records per condition

| Model | Condition | Runs | Records | Errors | Advice given | Advice errors | Abstained | No verdict | Problems | Leaky |
| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |
| Qwen3-Coder-30B | without Spark | 1 | 4 | 0 | 0 | 0 | 0 | 0 | 4 |  |
| Qwen3-Coder-30B | with Spark | 1 | 6 | 1 | 4 | 1 | 0 | 0 | 5 | yes |
| Claude Haiku 4.5 | without Spark | 1 | 4 | 0 | 0 | 0 | 0 | 0 | 4 |  |
| my-model | without Spark | 1 | 4 | 0 | 0 | 0 | 0 | 0 | 4 |  |
| Human reference | DS-1000 solutions | 1 | 4 | 0 | 0 | 0 | 0 | 0 | 4 |  |

Runs: seeds. Errors: records that ended in an error after their retries (e.g. an agent, learner, coder or judge \
call that kept failing); a resumed run retries them. Advice given: records whose coder was shown the memory's \
advice; Advice errors: records whose memory gave none and recorded why (recommendation.error, e.g. an agent reply \
still unusable after its retry), answered without advice and counted like any other. Abstained: records whose \
memory's gate chose silence (memory.gate), answered by the coder's own draft: a decision, counted like any other. \
No verdict: records without an error that lack the quality judge's verdict. Problems: the n of the paper table.

Quality and pass@1 use the same records, those without an error that hold a quality verdict, so n counts the same \
problems for both; Errors: records left out because they ended in an error.

Leaky: the memory was built with access to reference answers (the paper's synthetic experience); \
its numbers are not a fair test.
"""


def test_quality_table_markdown_is_exactly_the_paper_table(paper_runs):
    assert markdown(quality_table(paper_runs)) == QUALITY_MD


def test_counts_table_markdown_shows_errors_and_advice_per_condition(paper_runs):
    assert markdown(counts_table(paper_runs)) == COUNTS_MD


def test_helpfulness_table_markdown(paper_runs):
    families = [f"Pandas/{p}" for p in range(4)]
    top = cluster_ci([1, 1, 0, 0], families, 2000, 0)
    good = cluster_ci([1, 1, 1, 0], families, 2000, 0)
    top_ci, good_ci = (f"[{100 * lo:.1f}, {100 * hi:.1f}]" for lo, hi in (top, good))
    expected = f"""\
## Recommendation helpfulness

| Model | Condition | n | Paper n | EXTREMELY HELPFUL | 95% CI | At least GOOD | 95% CI | \
Paper: EXTREMELY HELPFUL | Paper: at least GOOD | Ours - paper (EXTREMELY HELPFUL) | Ours - paper (at least GOOD) | Leaky |
| --- | --- | ---: | ---: | ---: | --- | ---: | --- | ---: | ---: | ---: | ---: | --- |
| Qwen3-Coder-30B | with Spark | 4 | - | 50.0% | {top_ci} | 75.0% | {good_ci} | - | - | - | - | yes |
| all models | with Spark | 4 | 1000 | 50.0% | {top_ci} | 75.0% | {good_ci} | 76.1% | 98.2% | -26.1 pts | \
-23.2 pts | yes |

Helpfulness of the memory's recommendations as judged by helpfulness/fake-judge; bands EXTREMELY HELPFUL, GOOD, \
FAIR, POOR, HARMFUL. 95% CI: bootstrap over origin families. The paper reports its figures pooled over coders \
(the 'all models' with-Spark row). Paper: Tablan et al. (2025), arXiv:2511.08301. Paper n: the problems behind \
the paper's figure (it ran all 1000 DS-1000 problems for each coder and condition), beside ours; '-' where the row \
has no paper figure.

Leaky: the memory was built with access to reference answers (the paper's synthetic experience); \
its numbers are not a fair test.
"""
    assert markdown(helpfulness_table(paper_runs)) == expected


def test_latex_and_csv_carry_the_same_rows(paper_runs, tmp_path):
    table = quality_table(paper_runs)
    tex = latex(table)
    assert tex.splitlines()[1] == r"\begin{tabular}{llrrllrrrrrl}"
    assert r"Qwen3-Coder-30B & with Spark & 100.0\% & 5.00 & [5.00, 5.00] & too few to tell & 4.89 & +0.11 & 5 & 1000 & 1 & yes \\" in tex
    assert r"\par\footnotesize Leaky: the memory" in tex
    assert list(table.data["model"]) == ["Qwen3-Coder-30B", "Qwen3-Coder-30B", "Claude Haiku 4.5", "my-model",
                                         "Human reference"]
    assert list(table.data["leaky"]) == [False, True, False, False, False]
    assert list(table.data["errors"]) == [0, 1, 0, 0, 0] and list(table.data["n"]) == [4, 5, 4, 4, 4]
    assert table.data["paper_n"].tolist() == [PAPER_N, PAPER_N, PAPER_N, pd.NA, PAPER_N]  # my-model: no paper figure


def test_model_names_cannot_break_the_markdown_or_latex_tables(tmp_path):
    """A name with a table's or a format's own characters reads as itself: no cell split, no emphasis, code, HTML
    or LaTeX command, and no `\\\\[...]` read into the row before."""
    markdown_it = pytest.importorskip("markdown_it")
    names = ["a|b_c&d%", "[x]*y* `z` <b>\\", "two\nlines ~~$#^{}"]
    for i, name in enumerate(names):
        write_run(tmp_path / f"{i}__none__s0", [record(p, name, "none", scores=[4]) for p in range(3)])
    table = quality_table(analyse(load_runs(str(tmp_path / "*")), OPTIONS))
    rows, in_table = [], False  # each row of the Markdown table, as the text of its cells once parsed
    for token in markdown_it.MarkdownIt("commonmark").enable("table").parse(markdown(table)):
        in_table = token.type != "table_close" and (in_table or token.type == "table_open")
        if token.type == "tr_open":
            rows.append([])
        elif token.type == "inline" and in_table:
            rows[-1].append("".join(child.content for child in token.children))
    body = rows[1:]
    assert sorted(row[0] for row in body) == sorted(name.replace("\n", " ") for name in names)
    assert all(len(row) == len(table.columns) and row[1:4] == ["without Spark", "100.0%", "4.00"] for row in body)
    lines = [line for line in latex(table).splitlines() if "without Spark" in line]
    assert len(lines) == len(names)
    assert all(line.endswith(r" \\") and len(re.split(r"(?<!\\)&", line)) == len(table.columns) for line in lines)
    assert sorted(line.split(" & ")[0] for line in lines) == [
        r"a\textbar{}b\_c\&d\%", r"two lines \textasciitilde{}\textasciitilde{}\$\#\textasciicircum{}\{\}",
        r"{}[x]*y* `z` \textless{}b\textgreater{}\textbackslash{}"]


def test_paper_rows_map_our_model_names():
    assert paper_row("claude-haiku-4.5").label == paper_row("claude-haiku-4-5").label == "Claude Haiku 4.5"
    assert paper_row("Qwen3-Coder-30B-A3B-Instruct").label == "Qwen3-Coder-30B"
    assert published_quality("gpt-5-codex", "spark") == 4.83 and published_quality("gpt-5-codex", "raw_rag") is None
    assert paper_row("qwen2.5-coder-0.5b") is None


def test_html_report_is_self_contained_and_escaped(paper_runs, tmp_path):
    written = write_report(paper_runs.runs, OPTIONS, tmp_path / "out", {0: "Compute <b>x</b> & y"})
    html = (tmp_path / "out" / "report.html").read_text()
    assert tmp_path / "out" / "report.html" in written
    assert html.count("<img src='data:image/png;base64,") == len([p for p in written if p.suffix == ".png"]) > 0
    assert "<h2>Records per condition</h2>" in html and "paired sign-flip permutation test over origin" in html
    assert "src='file:" not in html and "http" not in html
    # two scripts, the browser's data and its code; record text, even "</script>", cannot end either
    assert html.count("<script") == html.count("</script>") == 2 and "<script type='application/json'" in html
    assert "alert(1)" not in html.replace("\\u003cscript\\u003ealert(1)\\u003c/script\\u003e", "")
    assert "Compute \\u003cb\\u003ex\\u003c/b\\u003e \\u0026 y" in html
    again = write_report(paper_runs.runs, OPTIONS, tmp_path / "again", {0: "Compute <b>x</b> & y"})
    assert again[-1].read_bytes() == (tmp_path / "out" / "report.html").read_bytes()  # deterministic


def _browser_data(html):
    return json.loads(re.search(r"<script type='application/json' id='browser-data'>(.*?)</script>", html).group(1))


def test_problem_browser_holds_every_record_once_with_its_advice_and_verdicts(paper_runs, tmp_path):
    write_report(paper_runs.runs, OPTIONS, tmp_path / "out", {0: "Compute <b>x</b> & y"})
    data = _browser_data((tmp_path / "out" / "report.html").read_text())
    assert data["conditions"] == [run.label for run in paper_runs.runs]
    assert [p[:3] for p in data["problems"]] == [[p, "Pandas", "Origin"] for p in range(5)]
    assert data["problems"][0][3] == "Compute <b>x</b> & y" and data["problems"][1][3] is None
    assert len(data["records"]) == sum(len(run.records) for run in paper_runs.runs) == 5 * 4 + 2
    records = [dict(zip(data["fields"], r)) for r in data["records"]]
    assert [(r["problem"], r["condition"], r["epoch"]) for r in records] == sorted(
        (r["problem"], r["condition"], r["epoch"]) for r in records)  # by problem, condition, epoch
    spark = data["conditions"].index("qwen3-coder-30b-a3b/spark/s0")
    first = next(r for r in records if r["problem"] == 0 and r["condition"] == spark and r["epoch"] == 0)
    assert first["status"] == "passed" and first["quality"] == 5 and first["band"] == "EXTREMELY HELPFUL"
    assert first["code"] == "result = 0  # <b>&" and first["error"] is None
    text, leak, error, plan, items = first["advice"]
    assert text == "Use pandas <0>" and (leak, error) == (0, None)
    assert plan == "reshape <0> Library: Pandas. Queries: DataFrame.pivot; melt. Avoid: loops"
    named = [[data["strings"][i[0]], data["strings"][i[1]], *i[2:5]] for i in items]
    assert named == [["doc:pandas:pandas.DataFrame.pivot#overview", "doc", 1, 0, 0], ["ins:0123", "insight", 0, 1, 0]]
    judge, kind, repeat, score, band, rationale = first["verdicts"][0]
    assert (data["strings"][judge], kind, score) == ("quality/fake-judge", "quality", 5)
    assert rationale == "fine <script>alert(1)</script>"
    unusable = next(r for r in records if r["problem"] == 4 and r["condition"] == spark)
    assert unusable["advice"][0] == "" and unusable["advice"][2] == "recommendation unusable"
    outage = next(r for r in records if r["problem"] == 0 and r["epoch"] == 1)
    assert outage["error"] == "APIStatusError: 503" and outage["status"] == "none" and outage["exec"] is None
    failed = next(r for r in records if r["status"] == "failed")
    assert failed["exec"] == ["AssertionError", 0.1, "AssertionError <x>"] and failed["advice"] is None
    assert data["values"]["status"] == ["passed", "failed", "none"]
    assert data["values"]["band"] == ["EXTREMELY HELPFUL", "GOOD", "FAIR"]


def test_problem_browser_names_contributors_and_poison(tmp_path):
    made = record(7, "m", "spark", scores=[4])
    made["recommendation"]["items"] = [{"id": "ins:1", "kind": "insight", "score": 0.1, "cited": True,
                                        "contributors": ["a", "b"], "poison": True}]
    write_run(tmp_path / "runs" / "m__spark__s0", [made])
    write_report(load_runs(str(tmp_path / "runs" / "*")), OPTIONS, tmp_path / "out", {})
    data = _browser_data((tmp_path / "out" / "report.html").read_text())
    (item,) = data["records"][0][data["fields"].index("advice")][4]
    assert [data["strings"][i] for i in item[:2]] == ["ins:1", "insight"] and item[2:5] == [1, 0, 1]
    assert [data["strings"][c] for c in item[5]] == ["a", "b"]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "spark_eval", "stage=report", *args], capture_output=True,
                          text=True, cwd=PROJECT_ROOT, timeout=300)


def test_stage_report_through_the_command_line_writes_every_file(tmp_path):
    synthetic_experiment(tmp_path / "runs", ["qwen3-coder-30b", "gpt-5-codex"], n=21)
    out = tmp_path / "report"
    result = _cli(f"results={tmp_path / 'runs'}/*", f"report.out={out}", "report.bootstrap=200")
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("report.html", "paper_table.md", "paper_table.csv", "paper_table.tex", "conditions.md",
                 "conditions.csv", "helpfulness_table.md",
                 "comparisons.csv", "breakdown.csv", "records.parquet", "quality_by_model.png",
                 "quality_by_model.pdf", "learning_curve_gpt-5-codex__spark__s0.png"):
        assert (out / name).is_file(), name
    header = (out / "comparisons.csv").read_text().splitlines()[0].split(",")
    assert header[:5] == ["model", "condition", "baseline", "metric", "judge"]
    assert {"n", "families", "mean_diff", "ci_low", "ci_high", "test", "p_value", "p_holm"} <= set(header)
    counts = (out / "conditions.csv").read_text().splitlines()
    assert counts[0] == ("model,memory,condition,runs,records,errors,advice_given,advice_errors,abstained,no_verdict,"
                         "problems,leaky")
    assert (out / ".hydra-report" / "config.yaml").is_file()  # Hydra's own output goes to report.out too


@pytest.mark.parametrize("results", ["{tmp}/nothing*", ""])
def test_stage_report_without_runs_stops_with_one_line(tmp_path, results):
    result = _cli(f"results={results.format(tmp=tmp_path)}", f"report.out={tmp_path / 'out'}")
    assert result.returncode == 2
    errors = [line for line in (result.stdout + result.stderr).splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "results='results/" in errors[0]
    assert not (tmp_path / "out" / "report.html").exists()


def test_stage_report_without_an_output_folder_stops_with_one_line(tmp_path):
    write_run(tmp_path / "m__none__s0", [record(0, "m", "none")])
    result = _cli(f"results={tmp_path}/*")
    errors = [line for line in (result.stdout + result.stderr).splitlines() if "ERROR" in line]
    assert result.returncode == 2 and len(errors) == 1 and "report.out=<folder" in errors[0]


def test_leaky_runs_are_marked_in_comparisons_and_breakdowns(paper_runs):
    comparisons = paper_runs.comparisons.set_index(["model", "metric"])
    assert comparisons.loc[("qwen3-coder-30b-a3b", "quality"), "leaky"]
    assert len(paper_runs.breakdown) and paper_runs.breakdown["leaky"].all()


@pytest.mark.parametrize("valid", [False, True])
def test_a_judge_without_signal_is_marked_in_every_table_that_rests_on_it(tmp_path, valid):
    """24 problems per arm, half passing: a judge whose scores follow execution has signal; one whose scores
    ignore it (the same pattern of scores on passing and failing problems) has none, and says so in the paper
    table (Markdown, CSV), the validity table, comparisons.csv and the HTML report."""
    for memory in ("none", "spark"):
        scores = [(5.0 if p % 2 else 1.0) if valid else float(1 + (p // 2) % 5) for p in range(24)]
        write_run(tmp_path / "runs" / f"coder__{memory}__s0", [
            record(p, "coder", memory, passed=bool(p % 2), scores=[scores[p]])
            for p in range(24)])
    analysis = analyse(load_runs(str(tmp_path / "runs" / "*")), OPTIONS)
    write_report(analysis.runs, OPTIONS, tmp_path / "out", {})
    mark = "signal" if valid else "no signal on these records"
    paper = (tmp_path / "out" / "paper_table.md").read_text()
    assert paper.count(f"| {mark} |") == 2
    assert list(pd.read_csv(tmp_path / "out" / "paper_table.csv")["judge_signal"]) == [mark, mark]
    validity = pd.read_csv(tmp_path / "out" / "validity_table.csv")
    assert list(validity["signal"]) == [mark] * 3 and list(validity["n"]) == [48, 24, 24]
    assert (validity["auroc"] == 1.0).all() if valid else (validity["auroc"] == 0.5).all()
    compared = pd.read_csv(tmp_path / "out" / "comparisons.csv", keep_default_na=False)
    assert list(compared.loc[compared["metric"] == "quality", "judge_signal"]) == [mark]
    assert list(compared.loc[compared["metric"] == "pass", "judge_signal"]) == [""]
    html = (tmp_path / "out" / "report.html").read_text()
    assert ("its quality difference is not a finding" in html) is not valid
    assert "Quality judge validity against execution" in html
