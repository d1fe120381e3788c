"""Static API labels of a DS-1000 problem: the documented qualified names its reference solution uses.

The reference is parsed in its place in the problem's exec context (at `[insert]`), so the imports resolve its
names: `np.argsort` -> `numpy.argsort`, `from scipy import stats; stats.ttest_ind` -> `scipy.stats.ttest_ind`,
`F.softmax` -> `torch.nn.functional.softmax`. Only the reference's own lines give labels; the whole code context
(its test inputs too) tells the types of names. Members of objects (`df.groupby(...).agg`, `a.reshape`,
`t.view`) follow a best-effort rule:

- an object's type is known when a documented class made it (`pd.DataFrame(...)`, `LinearRegression()`), or a
  factory (FACTORIES: `pd.read_csv`, any `numpy.*`, `torch.*` or `tensorflow.*` function), or a member whose
  result MEMBER_RESULTS knows (`.groupby` -> DataFrameGroupBy, `.values` -> ndarray), a method of a main class
  (CLASSES says what it returns), arithmetic on a typed object, or a name once assigned one of these (an
  assignment of unknown type keeps the type; an input `df, a = test_input` has the type `define_test_input` gave);
- a member of a typed object is looked up on its class, then on the classes its FAMILY lists: the walk lists a
  shared or inherited member once, under one class (`df.iloc` is `pandas.Series.iloc`, `fig.legend` is
  `matplotlib.figure.FigureBase.legend`), so that spelling is the KB's name for it;
- a member of an object of unknown type is looked up on the main classes (CLASSES, in order) of the problem's
  library, then of the other libraries the program imports; the first documented `<class>.<member>` wins.

Members of literals, containers and builtins' results give no label, and neither do names the KB does not
document, nor the copy of an input a reference hands its own function (`result = g(df.copy())`, DS-1000's
convention). A reference that does not parse has no labels.
"""
from __future__ import annotations

import ast
import builtins
import re
from dataclasses import dataclass
from typing import Iterable, Mapping

from spark_eval.types import LIBRARIES, LIBRARY_MODULES, Problem

DOTTED = re.compile(r"\b[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
"""A dotted name as text writes it (`np.where`, `df.groupby`, `pandas.DataFrame.merge`): where advice, queries and
lessons name APIs."""

# The names the libraries' users import them under.
IMPORT_ALIASES = {"np": "numpy", "pd": "pandas", "plt": "matplotlib.pyplot", "mpl": "matplotlib", "tf": "tensorflow",
                  "sns": "seaborn"}

DF, SERIES, NDARRAY, TENSOR, TF_TENSOR = "pandas.DataFrame", "pandas.Series", "numpy.ndarray", "torch.Tensor", \
    "tensorflow.Tensor"
BUILTIN = "builtins"  # the type of Python's own values (literals, containers, `len(...)`): no member is an API
_SAME = "="  # in MEMBER_RESULTS: the owner's own type

# Per library, the main classes a member of an object of unknown type is looked up on, in order, each with the
# type its methods are taken to return (None: unknown).
CLASSES: dict[str, tuple[tuple[str, str | None], ...]] = {
    "Pandas": ((DF, DF), (SERIES, SERIES), ("pandas.core.groupby.DataFrameGroupBy", DF),
               ("pandas.core.groupby.SeriesGroupBy", SERIES), ("pandas.core.groupby.GroupBy", DF),
               ("pandas.Index", "pandas.Index"), ("pandas.MultiIndex", "pandas.Index"),
               ("pandas.DatetimeIndex", "pandas.Index"), ("pandas.core.window.Rolling", DF),
               ("pandas.core.resample.Resampler", DF)),
    "Numpy": ((NDARRAY, NDARRAY),),
    "Pytorch": ((TENSOR, TENSOR), ("torch.nn.Module", None)),
    "Tensorflow": ((TF_TENSOR, TF_TENSOR), ("tensorflow.Variable", TF_TENSOR), ("tensorflow.data.Dataset", None)),
    "Scipy": tuple((f"scipy.sparse.{fmt}_array", f"scipy.sparse.{fmt}_array")
                   for fmt in ("csr", "csc", "coo", "lil", "dok", "bsr", "dia")),
    "Sklearn": (("sklearn.base.TransformerMixin", None), ("sklearn.base.ClusterMixin", None),
                ("sklearn.base.BaseEstimator", None)),
    "Matplotlib": (("matplotlib.axes.Axes", None), ("matplotlib.figure.Figure", None),
                   ("matplotlib.figure.FigureBase", None), ("matplotlib.lines.Line2D", None),
                   ("matplotlib.axis.XAxis", None), ("matplotlib.axis.YAxis", None), ("matplotlib.axis.Axis", None)),
}
_RESULT_OF = {cls: made for pairs in CLASSES.values() for cls, made in pairs}
# Where the walk documents members a main class shares (a Series' `tolist` is `pandas.Index.tolist`): tried after
# the class. A class outside CLASSES (`LinearRegression`, `torch.nn.Linear`) is followed by its library's CLASSES,
# which stand for its bases (`TransformerMixin`, `Module`).
_SPARSE = tuple(cls for cls, _ in CLASSES["Scipy"])
FAMILY = {DF: (SERIES,), SERIES: (DF, "pandas.Index"), "pandas.Index": ("pandas.MultiIndex", "pandas.DatetimeIndex"),
          "pandas.core.groupby.DataFrameGroupBy": ("pandas.core.groupby.GroupBy",),
          "pandas.core.groupby.SeriesGroupBy": ("pandas.core.groupby.GroupBy",),
          "matplotlib.figure.Figure": ("matplotlib.figure.FigureBase",),
          "matplotlib.axis.XAxis": ("matplotlib.axis.Axis",), "matplotlib.axis.YAxis": ("matplotlib.axis.Axis",),
          **{cls: _SPARSE for cls in _SPARSE}}
# A column of a table: `df['a']` of a DataFrame, `df.groupby(k)['a']` of its groups.
COLUMN_OF = {DF: SERIES, "pandas.core.groupby.DataFrameGroupBy": "pandas.core.groupby.SeriesGroupBy"}
# Functions whose result type is known, by prefix of the qualified name (first match).
FACTORIES = (("pandas.read_", DF), ("pandas.concat", DF), ("pandas.merge", DF), ("pandas.pivot_table", DF),
             ("pandas.get_dummies", DF), ("pandas.crosstab", DF), ("seaborn.load_dataset", DF), ("numpy.", NDARRAY),
             ("torch.", TENSOR), ("tensorflow.", TF_TENSOR), ("scipy.sparse.", "scipy.sparse.csr_array"))
# Members whose result type is known whatever their class says (`_SAME`: the owner's type).
MEMBER_RESULTS = {"groupby": "pandas.core.groupby.DataFrameGroupBy", "values": NDARRAY, "to_numpy": NDARRAY,
                  "numpy": NDARRAY, "columns": "pandas.Index", "index": "pandas.Index",
                  "rolling": "pandas.core.window.Rolling", "resample": "pandas.core.resample.Resampler",
                  "T": _SAME, "loc": _SAME, "iloc": _SAME, "at": _SAME, "iat": _SAME,
                  "tolist": BUILTIN, "to_list": BUILTIN, "item": BUILTIN, "to_dict": BUILTIN, "shape": BUILTIN}
# Libraries whose classes an object of unknown type is tried on before the problem's own: most objects of a
# SciPy problem are ndarrays (a sparse matrix is usually typed by the call that made it).
UNKNOWN_FIRST = {"Scipy": ("Numpy",)}
# Members documented under another spelling (pandas' `agg = aggregate` is walked once, as `aggregate`).
MEMBER_ALIASES = {"agg": ("aggregate",), "to_list": ("tolist",)}
_CONTAINERS = {"list", "dict", "set", "tuple", "str", "sorted", "len", "range", "zip", "enumerate", "map", "filter",
               "int", "float", "bool", "reversed", "repr", "format", "isinstance", "type", "print"}
_LITERALS = (ast.Constant, ast.JoinedStr, ast.List, ast.Tuple, ast.Dict, ast.Set, ast.ListComp, ast.DictComp,
             ast.SetComp, ast.GeneratorExp)
_LIBRARY_OF = {module: library for library, module in LIBRARY_MODULES.items()}


class ApiNames:
    """Every library's documented qualified names (as `kb.load_api_names` gives them), indexed for labelling."""

    def __init__(self, names: Mapping[str, Iterable[str]]) -> None:
        self.names = frozenset(name for found in names.values() for name in found)
        self.parents = frozenset(name.rsplit(".", 1)[0] for name in self.names if "." in name)

    def is_class(self, name: str) -> bool:
        """One of CLASSES, or a name with documented members spelt like a class (`LinearRegression`, `cKDTree`)."""
        return name in _RESULT_OF or (name in self.parents and not name.rsplit(".", 1)[-1].islower())

    def label(self, path: str, called: bool) -> str | None:
        """What a dotted name reached from an import is a label of: itself when documented and called or not a
        module, else its nearest documented ancestor when that has no members (`scipy.stats.norm.ppf` ->
        `scipy.stats.norm`, `np.multiply.reduce` -> `numpy.multiply`; `np.random.seed` -> none)."""
        if path in self.names and (called or path not in self.parents or self.is_class(path)):
            return path
        while "." in path:
            path = path.rsplit(".", 1)[0]
            if path in self.names:
                return None if path in self.parents else path
        return None


def api_labels(problem: Problem, names: ApiNames) -> tuple[str, ...]:
    """The sorted documented qualified names that `problem`'s reference solution calls or reads."""
    context = _parse(problem.code_context)
    exec_context = _exec_context(context) if context else None
    if exec_context is None or "[insert]" not in exec_context:
        exec_context = "[insert]"
    before, _, after = exec_context.partition("[insert]")
    program = _parse(before + problem.reference_code + after)
    if program is None:
        return ()
    start = before.count("\n") + 1
    imported = _imports([tree for tree in (context, program) if tree])
    modules = {path.split(".")[0] for path in imported.values()}
    first = [*UNKNOWN_FIRST.get(problem.library, ()), problem.library]
    libraries = first + [lib for lib in LIBRARIES if lib not in first and LIBRARY_MODULES[lib] in modules]
    reader = _Reader(names, {**IMPORT_ALIASES, **imported}, libraries)
    if context:
        reader.visit(context)  # types only: none of its lines is the reference's
        reader.types.update(_input_types(context, program, reader.types))
    reader.lines = range(start, start + problem.reference_code.count("\n") + 1)
    reader.visit(program)
    return tuple(sorted(reader.labels))


def _parse(code: str) -> ast.Module | None:
    try:
        return ast.parse(code)
    except (SyntaxError, ValueError):
        return None


def _exec_context(context: ast.Module) -> str | None:
    """The `exec_context = r\"\"\"...\"\"\"` string of a DS-1000 code context."""
    found = [node.value.value for node in context.body if isinstance(node, ast.Assign) and _names(node.targets[0]) ==
             ["exec_context"] and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)]
    return found[0] if found else None


def _input_types(context: ast.Module, program: ast.Module, types: dict[str, str]) -> dict[str, str]:
    """The types of the exec context's inputs (`M = test_input`): those of the names the code context's
    `define_test_input` returns (`return sA`), when it has one return and the exec context one unpacking."""
    returned = [node.value for function in ast.walk(context)
                if isinstance(function, ast.FunctionDef) and function.name == "define_test_input"
                for node in ast.walk(function) if isinstance(node, ast.Return) and node.value]
    unpacked = [node.targets[0] for node in program.body if isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.value, ast.Name) and node.value.id == "test_input"]
    if len(returned) != 1 or len(unpacked) != 1:
        return {}
    sources, targets = _names(returned[0]), _names(unpacked[0])
    if len(sources) != len(targets):
        return {}
    return {target: types[source] for source, target in zip(sources, targets) if source in types and target}


def _names(node: ast.expr) -> list[str | None]:
    """The names of `a` or of `a, b`; None for anything else."""
    return [item.id if isinstance(item, ast.Name) else None for item in getattr(node, "elts", [node])]


def _imports(trees: list[ast.Module]) -> dict[str, str]:
    """Each name an import binds -> what it names (`np` -> numpy, `stats` -> scipy.stats)."""
    bound = {}
    for node in (node for tree in trees for node in ast.walk(tree)):
        if isinstance(node, ast.Import):  # `import a.b` binds `a`; `import a.b as c` binds `c` to a.b
            bound.update({alias.asname or alias.name.split(".")[0]: alias.name if alias.asname else
                          alias.name.split(".")[0] for alias in node.names})
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            bound.update({alias.asname or alias.name: f"{node.module}.{alias.name}" for alias in node.names})
    return bound


def _copied(node: ast.expr) -> ast.expr | None:
    """`x` of `x.copy()`: DS-1000's references hand their own function a copy of the input (`g(df.copy())`)."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "copy" \
            and not node.args and not node.keywords:
        return node.func.value
    return None


def _library(qualname: str) -> str:
    """The DS-1000 library of a qualified name (`torch.Tensor` -> Pytorch), or ''."""
    return _LIBRARY_OF.get(qualname.split(".")[0], "")


@dataclass(frozen=True)
class _Value:
    """What an expression is: a dotted name reached from an import, or an object of a type (None: unknown)."""

    path: str | None = None
    type: str | None = None


_UNKNOWN = _Value()


class _Reader(ast.NodeVisitor):
    """Walks a module in source order: learns the types of names and collects labels on `lines`."""

    def __init__(self, names: ApiNames, aliases: dict[str, str], libraries: list[str]) -> None:
        self.api, self.aliases, self.libraries = names, aliases, libraries
        self.types: dict[str, str] = {}
        self.labels: set[str] = set()
        self.functions: set[str] = set()
        self.lines = range(0)

    def generic_visit(self, node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            self.expr(child) if isinstance(child, ast.expr) else self.visit(child)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.functions.add(node.name)
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        value = self.expr(node.value)
        for target in node.targets:
            self._assign(target, value)

    def _assign(self, target: ast.expr, value: _Value) -> None:
        if isinstance(target, ast.Name):
            if value.type:
                self.types[target.id] = value.type
        else:
            self.expr(target)  # `df['a'] = ...`, `df.columns = ...`: what it reads counts

    def _emit(self, label: str | None, node: ast.expr) -> None:
        if label and node.lineno in self.lines:
            self.labels.add(label)

    def expr(self, node: ast.expr) -> _Value:
        """Evaluate `node`; a documented dotted name it ends on is a label unless it is a module."""
        value = self._eval(node)
        if value.path:
            self._emit(self.api.label(value.path, called=False), node)
        return value

    def _eval(self, node: ast.expr) -> _Value:
        if isinstance(node, ast.Name):
            return self._name(node.id)
        if isinstance(node, ast.Attribute):
            return self._attribute(node, called=False)
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.Subscript):
            return self._subscript(node)
        if isinstance(node, (ast.BinOp, ast.UnaryOp, ast.Compare)):
            operands = [self.expr(child) for child in ast.iter_child_nodes(node) if isinstance(child, ast.expr)]
            return next((v for v in operands if v.type and v.type != BUILTIN), _UNKNOWN)
        self.generic_visit(node)
        return _Value(type=BUILTIN) if isinstance(node, _LITERALS) else _UNKNOWN

    def _name(self, name: str) -> _Value:
        if name in self.aliases:
            return _Value(path=self.aliases[name])
        if name in self.types:
            return _Value(type=self.types[name])
        return _Value(path=f"builtins.{name}") if hasattr(builtins, name) else _UNKNOWN

    def _attribute(self, node: ast.Attribute, called: bool) -> _Value:
        owner = self._eval(node.value)
        if owner.path:
            return _Value(path=f"{owner.path}.{node.attr}")
        if owner.type == BUILTIN:
            return _Value(type=BUILTIN)
        found = self._member(owner.type, node.attr)
        if found is None:
            return _UNKNOWN
        label, made = found
        self._emit(label, node)
        if (owner.type, node.attr) == (SERIES, "groupby"):
            return _Value(type="pandas.core.groupby.SeriesGroupBy")
        if node.attr in MEMBER_RESULTS:
            result = MEMBER_RESULTS[node.attr]
            return _Value(type=(owner.type or label.rsplit(".", 1)[0]) if result == _SAME else result)
        if called:
            return _Value(type=made)
        return _Value(type=label if label in self.api.parents else None)  # an accessor: `.str`, `.dt`

    def _member(self, owner: str | None, attr: str) -> tuple[str, str | None] | None:
        """The first documented `<class>.<attr>` of the classes tried for `owner` (its class and FAMILY; of unknown
        type: CLASSES of self.libraries), with the type a call of it returns (the owner's, if a main class)."""
        if owner:
            family = FAMILY.get(owner, ()) if owner in _RESULT_OF else \
                tuple(cls for cls, _ in CLASSES.get(_library(owner), ()))
            classes: Iterable[str] = (owner, *family)
        else:
            classes = dict.fromkeys(cls for library in self.libraries for cls, _ in CLASSES[library])
        for cls in classes:
            for name in (attr, *MEMBER_ALIASES.get(attr, ())):
                if f"{cls}.{name}" in self.api.names:
                    return f"{cls}.{name}", _RESULT_OF.get(owner if owner in _RESULT_OF else cls)
        return None

    def _call(self, node: ast.Call) -> _Value:
        func = self._attribute(node.func, called=True) if isinstance(node.func, ast.Attribute) else \
            self._eval(node.func)
        own = isinstance(node.func, ast.Name) and node.func.id in self.functions
        for argument in (*node.args, *(keyword.value for keyword in node.keywords)):
            self.expr((own and _copied(argument)) or argument)
        if func.path is None:
            return func if isinstance(node.func, ast.Attribute) else _UNKNOWN
        self._emit(self.api.label(func.path, called=True), node)
        return _Value(type=self._made_by(func.path))

    def _made_by(self, path: str) -> str | None:
        """The type of what calling `path` returns, when known."""
        if path.startswith("builtins."):
            return BUILTIN if path.removeprefix("builtins.") in _CONTAINERS else None
        if self.api.is_class(path):
            return path
        if self.api.is_class(path.rsplit(".", 1)[0]):  # `pd.DataFrame.from_records`, `tf.data.Dataset.range`
            return path.rsplit(".", 1)[0]
        return next((made for prefix, made in FACTORIES if path.startswith(prefix)), None)

    def _subscript(self, node: ast.Subscript) -> _Value:
        owner = self.expr(node.value)
        self.expr(node.slice)
        if owner.type in COLUMN_OF and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
            return _Value(type=COLUMN_OF[owner.type])
        return _Value(type=owner.type) if owner.type != BUILTIN else _UNKNOWN


def names_api(text: str, labels: Iterable[str]) -> tuple[str, ...]:
    """The labels (`api_labels`) that `text` names, sorted: advice checked against the reference, no judge needed.

    A label is named when its last part (`argsort` of `numpy.argsort`, `DataFrame` of `pandas.DataFrame`, or a
    spelling MEMBER_ALIASES gives it: `agg` for `aggregate`) appears as code does: after a dot (`np.argsort`,
    `df.groupby`), before a call's parenthesis (`argsort(`), in backticks; or anywhere as a word when the name cannot
    be read as English (it has a capital or an underscore: `MinMaxScaler`, `read_csv`). So prose such as "apply the
    mask" does not name `pandas.DataFrame.apply`, and `df.apply(f)` does.
    """
    written_as = {documented: code for code, names in MEMBER_ALIASES.items() for documented in names}
    found = set()
    for label in labels:
        last = label.rsplit(".", 1)[-1]
        for name in sorted({last, written_as.get(last, last), *MEMBER_ALIASES.get(last, ())}):
            word = re.escape(name)
            code = rf"\.{word}(?!\w)|(?<![\w.]){word}\s*\(|`{word}`"
            if name != name.lower() or "_" in name.strip("_"):
                code += rf"|(?<![\w]){word}(?!\w)"
            if re.search(code, text):
                found.add(label)
                break
    return tuple(sorted(found))
