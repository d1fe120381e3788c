"""The folders stand on the ones below them: imports go one way, and the analysis side loads no runner."""
import ast
import json
import subprocess
import sys

from spark_eval.config import PROJECT_ROOT

# Bottom first; a module may import its own layer and the layers before it. The statistics stand on records alone,
# so a run writes its summary with them.
LAYERS = [{"errors", "types", "records", "programs"}, {"stats"}, {"config", "data", "execution"}, {"models"},
          {"memory", "judge"}, {"pipeline"}, {"plots"}, {"report"}, {"__main__"}]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def layer_of(module: str) -> str:
    return module.split(".")[1] if module.count(".") else module


def test_imports_go_down_the_layers_only():
    package = PROJECT_ROOT / "spark_eval"
    upward = []
    for path in package.rglob("*.py"):
        parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
        here = parts[1] if len(parts) > 2 else parts[-1]
        if here == "__init__":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
            for name in names:
                if name.startswith("spark_eval.") and RANK[layer_of(name)] > RANK[here]:
                    upward.append(f"{'/'.join(parts)} imports {name}")
    assert not upward, upward


def _imports(path, module: str) -> set[str]:
    """The project modules a file imports, wherever in it (a function's own import counts too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            base = node.module or ""
            if node.level:
                package = module.split(".")[: -node.level] if path.name != "__init__.py" else module.split(".")
                base = ".".join(package + ([base] if base else []))
            found |= {base, *(f"{base}.{a.name}" for a in node.names)}
    return found


def test_no_two_files_import_each_other_even_by_way_of_others():
    """File-level circles, lazy imports included: a package's __init__ (its re-exports) does not count."""
    package = PROJECT_ROOT / "spark_eval"
    files = {".".join(p.relative_to(PROJECT_ROOT).with_suffix("").parts): p for p in package.rglob("*.py")}
    modules = {name.removesuffix(".__init__"): path for name, path in files.items()}
    graph = {name: {target for target in _imports(path, name) if target in modules and target != name
                    and modules[target].name != "__init__.py"} for name, path in modules.items()}
    circles = []
    for start in graph:  # a path from a file's import back to the file
        seen, stack = set(), [(start, [start])]
        while stack:
            node, trail = stack.pop()
            for target in graph[node]:
                if target == start:
                    circles.append(" -> ".join(trail + [start]))
                elif target not in seen:
                    seen.add(target)
                    stack.append((target, trail + [target]))
    assert not circles, sorted(set(circles))


def test_the_statistics_load_no_runner_model_memory_sandbox_or_hydra():
    code = ("import sys, json; import spark_eval.stats.analysis, spark_eval.stats.summary; "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('spark_eval', 'hydra', 'omegaconf')))))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                       cwd=PROJECT_ROOT).stdout)
    forbidden = [m for m in loaded if m.startswith(("hydra", "omegaconf")) or layer_of(m) in
                 {"pipeline", "execution", "memory", "models", "judge", "data", "config"}]
    assert not forbidden, forbidden
    assert "spark_eval.records" in loaded and len(loaded) <= 22  # records, and the statistics' own modules
