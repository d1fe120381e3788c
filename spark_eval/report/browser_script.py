"""The problem browser's inline script and style: plain JavaScript, no library, no network.

The script reads the JSON that browser.py embeds, lists the problems that match the filters and, for the problem
in `#problem=<id>`, shows every record side by side (with a flip filter set, that pair's baseline and condition
first). The filters live in the list's address (`#list?...`), so the browser's back button returns from a problem
to the list as it was filtered. Record text enters the page through `textContent` (`append` of strings) only.
"""

STYLE = """
.filters label{display:inline-block;margin:.2em 1em .2em 0;font-size:.9em}.filters input[type=number]{width:4em}
.dim{opacity:.35}.mark{margin-right:.4em;white-space:nowrap}#browser-list tbody tr{cursor:pointer}
#browser-list tbody tr:hover{background:#f3f6ff}.nav a{margin-right:1em}
#browser-detail{width:calc(100vw - 4em);margin-left:calc(50% - 50vw + 2em)}#browser-detail pre{white-space:pre-wrap}
table.side{display:table}table.side td{vertical-align:top;min-width:26em;max-width:40em}
table.side th{vertical-align:top}
table.side>tbody>tr>th{position:sticky;left:0;background:#f2f2f2}.prose{font-family:inherit;font-size:.95em}
table.side pre{word-break:break-word;max-height:28em;overflow:auto;margin:.2em 0}
table.side table{display:table;width:100%;table-layout:fixed;word-break:break-word;font-size:.9em;margin:0}
table.side table tr>:first-child{width:45%}table.side p{margin:.2em 0}tr.cited td{font-weight:bold}
.poison{color:#c62828;font-weight:bold}
"""

SCRIPT = r"""
(() => {
"use strict";
performance.mark("browser-start");
const DATA = JSON.parse(document.getElementById("browser-data").textContent);
performance.mark("browser-parsed");
const F = Object.fromEntries(DATA.fields.map((name, i) => [name, i]));
const {problems, records, conditions, strings} = DATA;
const G = Object.fromEntries(DATA.flip_fields.map((name, i) => [name, i]));
const FLIP = new Map();  // filter value -> the pair's runs, its flipped problems, its baseline's runs
DATA.flips.forEach((entry, k) => {
  const runs = new Set([...entry[G.condition_runs], ...entry[G.baseline_runs]]);
  for (const [key, way, arrow] of [["pf", G.destroyed, "pass\u2192fail"], ["fp", G.rescued, "fail\u2192pass"]]) {
    FLIP.set(key + k, {label: `${entry[G.label]} vs ${entry[G.baseline]}: ${arrow}`, arrow, runs,
                       problems: new Set(entry[way]), mine: new Set(entry[G.condition_runs]),
                       base: new Set(entry[G.baseline_runs]), baseline: entry[G.baseline]});
  }
});
const MARKS = {passed: "\u2713", failed: "\u2717", timeout: "T", infra_error: "!", skipped: "-", none: "\u00b7"};
const FILTERS = ["library", "perturbation", "condition", "status", "band", "qmin", "qmax", "q", "differ", "flip"];
const byProblem = problems.map(() => []);
records.forEach((r, i) => byProblem[r[F.problem]].push(i));
const indexOf = new Map(problems.map((p, i) => [p[0], i]));
const lowered = [], loweredPrompts = [];  // searchable text in lower case, made on the first search

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) node[key] = value;
  for (const child of children.flat()) if (child !== null && child !== undefined && child !== "") node.append(child);
  return node;
}
const pre = (text, className) => text ? el("pre", {className: className || ""}, text) : null;
const option = (value, label) => el("option", {value: String(value)}, label);
const choice = (name, label, values, labels) => el("label", null, label + " ",
  el("select", {name}, option("", "any"), values.map((v, i) => option(v, labels ? labels[i] : v))));

const form = el("form", {className: "filters", id: "browser-filters"},
  choice("library", "Library", DATA.values.library), choice("perturbation", "Perturbation", DATA.values.perturbation),
  choice("condition", "Condition", conditions.map((_, i) => i), conditions),
  choice("status", "Status", DATA.values.status),
  DATA.values.band.length ? choice("band", "Helpfulness", DATA.values.band) : null,
  el("label", null, "Quality ", el("input", {name: "qmin", type: "number", step: "any", placeholder: "min"}), " to ",
     el("input", {name: "qmax", type: "number", step: "any", placeholder: "max"})),
  el("label", null, "Text ", el("input", {name: "q", type: "search", size: 28,
     placeholder: "prompt, advice, code, output"})),
  el("label", null, el("input", {name: "differ", type: "checkbox", value: "1"}), " conditions disagree on passing"),
  FLIP.size ? el("label", null, "Flip ", el("select", {name: "flip"}, option("", "any"),
    [...FLIP].map(([value, flip]) => option(value, `${flip.label} (${flip.problems.size})`)))) : null,
  el("button", {type: "reset"}, "Clear"));
const count = el("p", {id: "browser-count", className: "note"});
const table = el("table", {id: "browser-list"});
const listView = el("div", {id: "browser-list-view"}, form, count,
  el("p", {className: "note"}, "A problem is listed when one of its records matches every filter (text: in the ",
     "problem's prompt or the record's advice, code, output, verdicts or error); records that do not match are ",
     "dimmed. \u2713 passed, \u2717 failed, T timeout, ! infra error, - skipped, \u00b7 no execution; then the ",
     "quality score. Flip: the problems a condition lost (pass\u2192fail: its baseline passed, it failed) or gained ",
     "(fail\u2192pass) against its model's baseline, by per-problem pass@1 of at least 0.5, as in the Flips table; ",
     "records of other runs are dimmed. Open a problem to see its conditions side by side."), table);
const detailView = el("div", {id: "browser-detail", hidden: true});
document.getElementById("browser").replaceChildren(listView, detailView);

function readFilters() {
  const f = {};
  for (const name of FILTERS) {
    const input = form.elements[name];
    f[name] = !input ? "" : input.type === "checkbox" ? (input.checked ? "1" : "") : input.value.trim();
  }
  return f;
}
function writeFilters(f) {
  for (const name of FILTERS) {
    const input = form.elements[name];
    if (input && input.type === "checkbox") input.checked = f[name] === "1";
    else if (input) input.value = f[name] || "";
  }
}
const listHash = (f) => "#list?" + new URLSearchParams(FILTERS.filter((n) => f[n]).map((n) => [n, f[n]]));
const hashFilters = (hash) => Object.fromEntries(new URLSearchParams(hash.slice(hash.indexOf("?") + 1)));

function searchable(i) {
  if (lowered[i] === undefined) {
    const r = records[i], e = r[F.exec] || [], a = r[F.advice] || [];
    lowered[i] = [r[F.code], e[0], e[2], a[0], a[2], a[3], r[F.error], ...r[F.verdicts].map((v) => v[5])]
      .filter(Boolean).join("\n").toLowerCase();
  }
  return lowered[i];
}
const disagree = (ids) => new Set(ids.map((i) => records[i][F.status] === "passed")).size > 1;

function select(f) {
  const needle = f.q.toLowerCase(), condition = f.condition === "" ? -1 : Number(f.condition);
  const qmin = f.qmin === "" ? -Infinity : Number(f.qmin), qmax = f.qmax === "" ? Infinity : Number(f.qmax);
  const scored = f.qmin !== "" || f.qmax !== "";
  const flip = f.flip ? FLIP.get(f.flip) || {problems: new Set(), runs: new Set()} : null;
  const matched = new Uint8Array(records.length), list = [];
  let n = 0;
  problems.forEach((p, pi) => {
    if ((f.library && p[1] !== f.library) || (f.perturbation && p[2] !== f.perturbation)) return;
    if (f.differ && !disagree(byProblem[pi])) return;
    if (flip && !flip.problems.has(pi)) return;
    if (needle && p[3] !== null && loweredPrompts[pi] === undefined) loweredPrompts[pi] = p[3].toLowerCase();
    const inPrompt = needle !== "" && p[3] !== null && loweredPrompts[pi].includes(needle);
    for (const i of byProblem[pi]) {
      const r = records[i], q = r[F.quality];
      if ((condition >= 0 && r[F.condition] !== condition) || (f.status && r[F.status] !== f.status)) continue;
      if (flip && !flip.runs.has(r[F.condition])) continue;
      if ((f.band && r[F.band] !== f.band) || (scored && (q === null || q < qmin || q > qmax))) continue;
      if (needle && !inPrompt && !searchable(i).includes(needle)) continue;
      matched[i] = 1;
      n += 1;
    }
    if (byProblem[pi].some((i) => matched[i])) list.push(pi);
  });
  return {list, matched, n};
}

let shown = [], drawn = null, listScroll = null, fromList = false;
function renderList() {
  const f = readFilters(), {list, matched, n} = select(f);
  shown = list;
  drawn = listHash(f);
  count.dataset.problems = list.length;
  count.dataset.records = n;
  count.textContent = `${list.length} of ${problems.length} problems listed; ${n} of ${records.length} records match.`;
  const head = el("tr", null, el("th", null, "Problem"), el("th", null, "Library"), el("th", null, "Perturbation"),
                  conditions.map((c) => el("th", null, c)));
  const body = el("tbody");
  for (const pi of list) {
    const [pid, library, perturbation] = problems[pi], cells = conditions.map(() => el("td"));
    for (const i of byProblem[pi]) {
      const r = records[i], q = r[F.quality];
      cells[r[F.condition]].append(el("span", {className: `mark ${r[F.status]}${matched[i] ? "" : " dim"}`,
        title: `${r[F.status]}, epoch ${r[F.epoch]}, repeat ${r[F.repeat]}`}, MARKS[r[F.status]] || "?",
        q === null ? "" : " " + q));
    }
    const row = el("tr", null, el("td", null, el("a", {href: `#problem=${pid}`}, `#${pid}`)),
                   el("td", null, library), el("td", null, perturbation), cells);
    row.dataset.pid = pid;
    body.append(row);
  }
  table.replaceChildren(el("thead", null, head), body);
  // the list's address keeps its filters, for the back button
  if (location.hash.startsWith("#list") || (location.hash === "" && drawn !== "#list?")) {
    history.replaceState(null, "", drawn);
  }
}
table.addEventListener("click", (event) => {
  const row = event.target.closest("tbody tr");
  if (row && !event.target.closest("a")) location.hash = `problem=${row.dataset.pid}`;
});

let typing = null;
form.addEventListener("change", () => { clearTimeout(typing); renderList(); });
form.addEventListener("input", (event) => {
  if (event.target.tagName !== "INPUT" || event.target.type === "checkbox") return;
  clearTimeout(typing);
  typing = setTimeout(renderList, 250);
});
form.addEventListener("submit", (event) => { event.preventDefault(); renderList(); });
form.addEventListener("reset", () => setTimeout(renderList, 0));

function itemsTable(items) {
  if (!items.length) return null;
  const rows = items.map(([id, kind, cited, leak, poison, contributors]) => el("tr", {className: cited ? "cited" : ""},
    el("td", null, strings[id]), el("td", null, strings[kind]),
    el("td", null, contributors.map((c) => strings[c]).join(", ")),
    el("td", null, cited ? "cited " : "", poison ? el("span", {className: "poison"}, "poison ") : "",
       leak ? "overlaps reference" : "")));
  const cited = items.filter((item) => item[2]).length;
  return el("table", null, el("caption", null, `${items.length} shown, ${cited} cited`),
    el("tr", null, ["Item", "Kind", "Contributors", "Flags"].map((h) => el("th", null, h))), rows);
}
const verdicts = (list) => list.length ? list.map(([judge, kind, repeat, score, band, rationale]) => el("p", null,
  el("b", null, strings[judge]), ` ${kind}, repeat ${repeat}: ${score === null ? "missing" : score}`,
  band ? ` (${band})` : "", rationale ? el("br") : null, rationale ? el("small", null, rationale) : null)) : null;
const ASPECTS = [
  ["Execution", (r) => r[F.exec] && [el("span", {className: r[F.status]}, r[F.status]), " ", r[F.exec][0] || "",
    ` (${(r[F.exec][1] || 0).toFixed(2)} s)`, pre(r[F.exec][2])]],
  ["Flip", (r) => flipsOf(r)],
  ["Quality", (r) => r[F.quality] === null ? null : String(r[F.quality])],
  ["Helpfulness", (r) => r[F.band]],
  ["Advice", (r) => r[F.advice] && [
    r[F.advice][1] ? el("p", {className: "poison"}, "overlaps the reference code") : null,
    r[F.advice][2] ? el("p", null, "No advice: " + r[F.advice][2]) : null,
    r[F.advice][3] ? el("p", null, "Plan: " + r[F.advice][3]) : null, pre(r[F.advice][0], "prose")]],
  ["APIs", (r) => r[F.apis] && [
    el("p", null, "Reference uses: " + r[F.apis][0].map((i) => strings[i]).join(", ")),
    el("p", null, r[F.apis][1] === null ? "Advice not checked" : r[F.apis][1].length
      ? "Advice names: " + r[F.apis][1].map((i) => strings[i]).join(", ") : "Advice names none of them")]],
  ["Items shown", (r) => r[F.advice] && itemsTable(r[F.advice][4])],
  ["Code", (r) => pre(r[F.code])],
  ["Verdicts", (r) => verdicts(r[F.verdicts])],
  ["Coder", (r) => r[F.coder] && `${r[F.coder][0]} tokens in, ${r[F.coder][1]} out, ` +
    `${(r[F.coder][2] || 0).toFixed(2)} s${r[F.coder][3] ? ", cached" : ""}`],
  ["Error", (r) => r[F.error]],
];

function flipsOf(r) {
  const found = [...FLIP.values()].filter((flip) => flip.mine.has(r[F.condition]) && flip.problems.has(r[F.problem]));
  return found.length ? found.map((flip) => `${flip.arrow} against ${flip.baseline}`).join("; ") : null;
}
function armsFirst(ids) {  // with a flip filter: the pair's baseline runs, then its condition's, then the rest
  const flip = FLIP.get(readFilters().flip);
  if (!flip) return ids;
  const rank = (i) => flip.base.has(records[i][F.condition]) ? 0 : flip.mine.has(records[i][F.condition]) ? 1 : 2;
  return ids.map((i, k) => [rank(i), k, i]).sort((a, b) => a[0] - b[0] || a[1] - b[1]).map((x) => x[2]);
}

function renderDetail(pi) {
  const [pid, library, perturbation, prompt] = problems[pi], ids = armsFirst(byProblem[pi]), at = shown.indexOf(pi);
  const several = ids.some((i) => records[i][F.epoch] || records[i][F.repeat]);
  const step = (to, label) => to < 0 || to >= shown.length ? null : el("a", {href: `#problem=${problems[shown[to]][0]}`,
    onclick: (event) => { event.preventDefault(); location.replace(`#problem=${problems[shown[to]][0]}`); }}, label);
  const back = el("a", {href: listHash(readFilters()), onclick: (event) => {
    if (fromList) { event.preventDefault(); history.back(); } }}, "\u2190 back to the list");
  const head = el("tr", null, el("th"), ids.map((i) => el("th", null, conditions[records[i][F.condition]],
    several ? ` epoch ${records[i][F.epoch]} repeat ${records[i][F.repeat]}` : "")));
  const rows = [];
  for (const [name, cell] of ASPECTS) {
    const cells = ids.map((i) => cell(records[i]));
    if (cells.some((c) => c)) {
      rows.push(el("tr", null, el("th", null, name), cells.map((c) => el("td", null, c || ""))));
    }
  }
  detailView.replaceChildren(
    el("p", {className: "nav"}, back, step(at - 1, "\u2190 previous"), step(at + 1, "next \u2192"),
       at < 0 ? "" : `problem ${at + 1} of ${shown.length} listed`),
    el("h3", null, `#${pid} ${library} ${perturbation}`),
    prompt === null ? null : el("details", {open: true}, el("summary", null, "Prompt"), pre(prompt)),
    el("table", {className: "side"}, el("thead", null, head), el("tbody", null, rows)));
}

let routed = false;
function route() {
  const found = /^#problem=(\d+)$/.exec(location.hash), pi = found ? indexOf.get(Number(found[1])) : undefined;
  if (pi !== undefined) {
    if (!routed) renderList();  // the list a problem's previous and next links walk through
    if (!listView.hidden) { listScroll = window.scrollY; fromList = routed; }
    renderDetail(pi);
    listView.hidden = true;
    detailView.hidden = false;
    detailView.scrollIntoView();
  } else {
    const returning = listView.hidden;
    if (location.hash.startsWith("#list")) writeFilters(hashFilters(location.hash));
    if (listHash(readFilters()) !== drawn) renderList();  // back from a problem: the list is still drawn
    detailView.hidden = true;
    listView.hidden = false;
    fromList = false;
    if (returning && listScroll !== null) window.scrollTo(0, listScroll);
  }
  routed = true;
}
window.addEventListener("hashchange", route);
route();
performance.mark("browser-listed");
})();
"""
