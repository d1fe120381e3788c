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


def test_the_statistics_load_no_runner_model_memory_sandbox_or_hydra():
    code = ("import sys, json; import spark_eval.stats.analysis, spark_eval.stats.summary; "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('spark_eval', 'hydra', 'omegaconf')))))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                       cwd=PROJECT_ROOT).stdout)
    forbidden = [m for m in loaded if m.startswith(("hydra", "omegaconf")) or layer_of(m) in
                 {"pipeline", "execution", "memory", "models", "judge", "data", "config"}]
    assert not forbidden, forbidden
    assert "spark_eval.records" in loaded and len(loaded) <= 22  # records, and the statistics' own modules
