"""Walk one library's public API and print one JSON line per documented object; uses only the stdlib.

Runs in the grading interpreter, where spark_eval is not importable, executed by path:
`python docwalk.py numpy`. Each line is `{qualname, objtype, signature, doc}`; lines are sorted by
qualname. Public means reachable from the top-level module through names without a leading underscore:
a module's `__all__` where it has one (else its `dir()`) plus its submodules and what it defines
itself, and the public methods and properties of classes (inherited ones too, when the library defines
them). An object reached by several paths is listed once, under its canonical name: the shallowest
path, then one through the class that defines the member, then the shortest, then the
lexicographically first. Anything that fails to import or read is skipped and counted; the counts end
up on stderr.
"""
from __future__ import annotations

import collections
import functools
import heapq
import importlib
import inspect
import json
import os
import pkgutil
import re
import sys
import warnings

QUIET = {"TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "-1", "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore"}
SKIP_NAMES = {"tests", "conftest", "setup", "externals", "vendored", "third_party", "benchmarks"}
DEPRECATIONS = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)
ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
PROC_PATH = re.compile(r"/proc/\d+/")
SIGNATURE_LINE = re.compile(r"^([\w.]+)(\(.*\))(\s*->\s*\S.*)?$", re.S)
# TensorFlow's generated API modules say only this; a module chunk would carry nothing but its name.
PLACEHOLDER_DOC = re.compile(r"^Public API for [\w.]+ namespace\.?$")

# roots: top-level packages whose objects count as the library's own (tf.keras is Keras 3 in TF 2.16).
# discover: also import submodules found on disk that the package does not import itself (matplotlib
#   and sklearn do not import theirs). Off where the package tree is not the API: TensorFlow's API is its
#   generated tf._api tree, torch's public modules are the ones `import torch` loads (its disk holds
#   hundreds of internal ones), and numpy's dir() deliberately hides numpy.core and numpy.matrixlib.
# renamed_modules: a module attribute is a submodule when its __name__ merely ends with the attribute's
#   name: TensorFlow's API modules are named tensorflow._api.v2.<path> (tf.experimental.dtensor hangs
#   off tensorflow.experimental), Keras' keras._tf_keras.keras.<path>.
# skip: paths not walked. numpy.compat holds Python-2 shims and pandas.compat version checks.
#   pandas.core and pandas.io are internals, except the modules in `extra`, the only ones there that
#   pandas' API reference documents. torch.ops holds dispatcher operator namespaces, torch.return_types
#   result tuples without docs, torch.fx.experimental and torch.jit.frontend compiler internals, and
#   torch.utils.data.datapipes a deprecated API. tf.compat.v2 mirrors tf and tf.compat.v1.compat mirrors
#   tf.compat; tf.dtensor, tf.security, tf.tools and tf.tsl are implementation packages that are in
#   tf.__all__ only because TensorFlow builds it from dir() (DTensor's API is tf.experimental.dtensor).
RULES = {
    "numpy": {"discover": False, "skip": ("numpy.compat",)},
    "pandas": {"skip": ("pandas.compat", "pandas.core", "pandas.io"),
               "extra": ("pandas.core.groupby", "pandas.core.resample", "pandas.core.window",
                         "pandas.io.formats.style", "pandas.io.json", "pandas.io.stata")},
    "torch": {"discover": False, "skip": ("torch.ops", "torch.return_types", "torch.fx.experimental",
                                          "torch.jit.frontend", "torch.utils.data.datapipes")},
    "tensorflow": {"discover": False, "roots": ("tensorflow", "keras"), "renamed_modules": True,
                   "skip": ("tensorflow.compat.v2", "tensorflow.compat.v1.compat", "tensorflow.dtensor",
                            "tensorflow.security", "tensorflow.tools", "tensorflow.tsl")},
}


class Walker:
    """Builds the graph of public names (container -> name -> object), then names each object once."""

    def __init__(self, name: str) -> None:
        rule = RULES.get(name, {})
        self.name = name
        self.roots = set(rule.get("roots", (name,)))
        self.discover = rule.get("discover", True)
        self.skip_paths = set(rule.get("skip", ()))
        self.extra_paths = tuple(rule.get("extra", ()))
        self.renamed_modules = rule.get("renamed_modules", False)
        self.objects: dict[int, object] = {}  # keeps every object alive, so ids stay unique
        self.edges: dict[int, list[tuple[str, int, int, str]]] = collections.defaultdict(list)
        self.skipped: collections.Counter = collections.Counter()

    def walk(self) -> list[dict]:
        root = importlib.import_module(self.name)
        self.objects[id(root)] = root
        classes = self.walk_modules(root)
        explored: set[int] = set()
        while classes:
            cls = classes.pop()
            if id(cls) not in explored:
                explored.add(id(cls))
                classes.extend(self.walk_class(cls))
        return self.entries(root)

    def walk_modules(self, root) -> list[type]:
        """Breadth-first over modules (sorted per layer, so a module is walked from its shallowest path)."""
        layer, seen, classes = [(self.name, root)], {id(root)}, []
        for path in self.extra_paths:  # public modules inside a skipped (internal) package
            module = self.checked(lambda: importlib.import_module(path), path)
            if module is not None:
                self.link(root, path[len(self.name) + 1:], module, 0, "module")
                seen.add(id(module))
                layer.append((path, module))
        while layer:
            following = []
            for path, module in sorted(layer, key=lambda pair: pair[0]):
                for name, obj, kind in self.module_members(module):
                    if kind == "module" and f"{path}.{name}" in self.skip_paths:
                        continue
                    self.link(module, name, obj, 0, kind)
                    if kind == "module" and id(obj) not in seen:
                        seen.add(id(obj))
                        following.append((f"{path}.{name}", obj))
                    elif kind == "class":
                        classes.append(obj)
            layer = following
        return classes

    def module_members(self, module) -> list[tuple[str, object, str]]:
        """(name, object, kind) of the module's public members, by name."""
        exported = self.safe(getattr, module, "__all__", None)
        exported = [n for n in exported if isinstance(n, str)] if isinstance(exported, (list, tuple)) else None
        listed = [n for n in self.safe(dir, module) or () if isinstance(n, str)]
        found = {}
        for name in sorted(set(listed if exported is None else exported) | set(self.submodule_names(module))):
            if public(name):
                found[name] = self.access(module, name)
        for name in listed:  # what __all__ leaves out: submodules, and what the module itself defines
            if public(name) and name not in found:
                obj = self.access(module, name)
                if kind_of(obj) == "module" or (kind_of(obj) and defined_in(obj, module)):
                    found[name] = obj
        members = []
        for name, obj in sorted(found.items()):
            kind = self.safe(self.member_kind, module, name, obj, exported)
            if kind:
                members.append((name, obj, kind))
        return members

    def member_kind(self, module, name: str, obj, exported: list[str] | None) -> str | None:
        """The kind of `module.name` when it is part of the module's public API, else None."""
        kind = kind_of(obj)
        if not kind or not self.belongs(obj) or self.deprecated(obj):
            return None
        if kind == "module" and not self.is_submodule(module, obj, name, exported):
            return None
        if kind != "module" and exported is None and not hasattr(module, "__path__") and not home_of(obj, module):
            return None  # a plain module without __all__ offers what it defines, not what it imports
        return kind

    def submodule_names(self, module) -> list[str]:
        """Names of the package's submodules on disk (imported by access), when discovery is on."""
        path = getattr(module, "__path__", None)
        if not self.discover or path is None or not getattr(module, "__name__", "").startswith(self.name):
            return []
        return [info.name for info in self.safe(lambda: list(pkgutil.iter_modules(path))) or ()]

    def access(self, module, name: str):
        """module.name, importing the submodule if needed; None when it fails or is deprecated."""
        def get():
            try:
                return getattr(module, name)
            except AttributeError:
                return importlib.import_module(f"{module.__name__}.{name}")
        return self.checked(get, name)

    def walk_class(self, cls) -> list[type]:
        """Link the class's public members (own and inherited from the library); return nested classes."""
        nested, seen = [], set()
        for owner in getattr(cls, "__mro__", (cls,)):
            mine = self.belongs(owner)
            for name in sorted(self.safe(lambda: list(vars(owner))) or ()):
                if name in seen:
                    continue
                seen.add(name)  # an override hides the same name further up the MRO
                if not mine or not public(name):
                    continue
                member = self.checked(lambda: class_member(cls, name, vars(owner)[name]), name)
                if member is None or self.safe(lambda: self.foreign(member[0]) or self.deprecated(member[0])):
                    continue
                inherited = 0 if self.safe(defines, cls, name, member[0], owner) else 1
                self.link(cls, name, member[0], inherited, member[1])
                if member[1] == "class":
                    nested.append(member[0])
        return nested

    def link(self, container, name: str, obj, inherited: int, kind: str) -> None:
        self.objects[id(obj)] = obj
        self.edges[id(container)].append((name, id(obj), inherited, kind))

    def canonical_names(self, root) -> dict[int, tuple[tuple, str]]:
        """Each object's best (depth, inherited, length, path) key and its kind, over all paths."""
        start = (self.name.count("."), 0, len(self.name), self.name)
        best, heap = {id(root): (start, "module")}, [(start, id(root))]
        while heap:
            key, node = heapq.heappop(heap)
            if best[node][0] != key:
                continue
            for name, child, inherited, kind in self.edges.get(node, ()):
                path = f"{key[3]}.{name}"
                candidate = (path.count("."), inherited, len(path), path)
                if child not in best or candidate < best[child][0]:
                    best[child] = (candidate, kind)
                    heapq.heappush(heap, (candidate, child))
        return best

    def entries(self, root) -> list[dict]:
        rows = []
        for node, (key, kind) in self.canonical_names(root).items():
            row = self.safe(lambda: describe(self.objects[node], key[3], kind))
            if row is None:
                self.skipped["undocumentable"] += 1
            elif row["doc"] or kind != "module":
                rows.append(row)
        return sorted(rows, key=lambda row: row["qualname"])

    def belongs(self, obj) -> bool:
        home = getattr(obj, "__name__" if inspect.ismodule(obj) else "__module__", None)
        if not isinstance(home, str):
            home = getattr(type(obj), "__module__", "")
        return isinstance(home, str) and home.split(".")[0] in self.roots

    def is_submodule(self, parent, module, name: str, exported: list[str] | None) -> bool:
        """A real child (`pkg.name`), or one the package exports under that name; not an alias like `np`."""
        real = getattr(module, "__name__", "")
        if name in (exported or ()) or real == f"{parent.__name__}.{name}":
            return True
        return self.renamed_modules and real.endswith(f".{name}")

    def foreign(self, obj) -> bool:
        """Known to come from another package (descriptors name no module: they count as the class's)."""
        home = getattr(obj, "__module__", None)
        return isinstance(home, str) and home.split(".")[0] not in self.roots

    def checked(self, get, name: str):
        """get(), or None (counted) when it fails or warns that `name` is deprecated."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = self.safe(get)
        mentioned = re.compile(rf"\b{re.escape(name)}\b")
        if any(issubclass(w.category, DEPRECATIONS) and mentioned.search(str(w.message)) for w in caught):
            self.skipped["deprecated"] += 1
            return None
        return value

    def deprecated(self, obj) -> bool:
        """Deprecated by its own doc (counted)."""
        if is_deprecated(self.safe(inspect.getdoc, obj) or ""):
            self.skipped["deprecated"] += 1
            return True
        return False

    def safe(self, call, *args):
        try:
            return call(*args)
        except (Exception, SystemExit) as e:  # one bad member never stops the walk
            self.skipped[type(e).__name__] += 1
            return None


def public(name: str) -> bool:
    return not name.startswith("_") and name not in SKIP_NAMES and not name.startswith("test_")


def kind_of(obj) -> str | None:
    """module, class or function; None for data (constants, instances without their own doc)."""
    if inspect.ismodule(obj):
        return "module"
    if inspect.isclass(obj):
        return "class"
    if inspect.isroutine(obj) or (callable(obj) and own_doc(obj)):  # ufuncs and other documented callables
        return "function"
    return None


def own_doc(obj) -> bool:
    doc = getattr(obj, "__doc__", None)
    return isinstance(doc, str) and doc != getattr(type(obj), "__doc__", None)


def defined_in(obj, module) -> bool:
    """Written in `module` itself. __all__ is what a star-import takes: numpy's leaves out min, max and
    round (they would shadow builtins) and numpy.lib.stride_tricks' leaves out sliding_window_view."""
    return getattr(obj, "__module__", None) == module.__name__


def home_of(obj, module) -> bool:
    """`module` is where `obj` is defined, or its public face when it is defined somewhere private."""
    home = getattr(obj, "__module__", None)
    if not isinstance(home, str) or home == module.__name__:
        return True
    return any(part.startswith("_") for part in home.split("."))


def class_member(cls, name: str, raw) -> tuple[object, str] | None:
    """(object, kind) for one entry of a class's namespace: method, property or nested class.

    The object is the namespace entry itself (so identity is stable), or the function a static or
    class method wraps; class access decides what other descriptors are: pandas' `Series.str` gives
    the accessor class, sklearn's `available_if` gives a method.
    """
    if isinstance(raw, (staticmethod, classmethod)):
        return raw.__func__, "method"
    if inspect.isclass(raw):
        return raw, "class"
    if isinstance(raw, (property, functools.cached_property)) or inspect.isdatadescriptor(raw):
        return (raw, "property") if own_doc(raw) else None
    if not hasattr(type(raw), "__get__"):
        return None  # plain class data
    value = getattr(cls, name)
    if inspect.isclass(value):
        return value, "class"
    if inspect.isroutine(value):
        return raw, "method"
    return (raw, "property") if own_doc(raw) else None


def defines(cls, name: str, obj, owner) -> bool:
    """Whether `cls` is where the member was written: by its __qualname__ when it has one, since torch's
    legacy tensor types (torch.IntTensor, ...) copy TensorBase's methods into their own namespace."""
    written = getattr(getattr(obj, "fget", obj), "__qualname__", None)
    if isinstance(written, str) and "." in written:
        return written == f"{cls.__qualname__}.{name}"
    return owner is cls


def is_deprecated(doc: str) -> bool:
    """Deprecated by its own doc: sklearn's `DEPRECATED:` prefix, TensorFlow's `(deprecated)` at the end of
    the summary line, or a `.. deprecated::` directive before any section."""
    if doc.lstrip().upper().startswith("DEPRECATED") or doc.split("\n", 1)[0].rstrip().endswith("(deprecated)"):
        return True
    intro = re.split(r"\n[^\n]+\n-{3,}\n", doc, maxsplit=1)[0]
    return re.search(r"^\.\. deprecated::", intro, re.M) is not None  # indented: about one parameter


def scrub(text: str) -> str:
    """Drop what differs between two walks: object addresses, and process ids in /proc paths (numpy.testing)."""
    return PROC_PATH.sub("/proc/<pid>/", ADDRESS.sub("", text))


def describe(obj, qualname: str, kind: str) -> dict:
    doc = scrub(inspect.getdoc(obj) or "")
    if kind == "module" and PLACEHOLDER_DOC.match(doc):
        doc = ""
    signature = None
    if kind not in ("module", "property"):
        try:
            signature = scrub(str(inspect.signature(obj)))
        except Exception:  # C callables without a text signature, or a broken __signature__
            pass
    names = {qualname.rsplit(".", 1)[-1], str(getattr(obj, "__name__", ""))}
    written, doc = leading_signature(doc, names)
    return {"qualname": qualname, "objtype": kind, "signature": signature or written, "doc": doc}


def leading_signature(doc: str, names: set[str]) -> tuple[str | None, str]:
    """Split off a first line like `add(input, other, *, alpha=1) -> Tensor` (C functions document so)."""
    lines = doc.split("\n")
    end, depth = 0, 0
    while end < min(len(lines), 8):
        depth += lines[end].count("(") - lines[end].count(")")
        end += 1
        if depth <= 0:
            break
    head = " ".join(line.strip() for line in lines[:end])
    match = SIGNATURE_LINE.match(head)
    if not match or match.group(1).rsplit(".", 1)[-1] not in names:
        return None, doc
    return match.group(2) + (match.group(3) or "").rstrip(), "\n".join(lines[end:]).strip()


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python docwalk.py <import name>")
    for key, value in QUIET.items():
        os.environ.setdefault(key, value)
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # what the library prints must not corrupt the JSON lines
    warnings.simplefilter("ignore")
    walker = Walker(sys.argv[1])
    rows = walker.walk()
    for row in rows:
        out.write(json.dumps(row, sort_keys=True) + "\n")
    out.flush()
    summary = {"library": walker.name, "objects": len(rows), "skipped": dict(sorted(walker.skipped.items()))}
    print("docwalk " + json.dumps(summary), file=sys.stderr)


if __name__ == "__main__":
    main()
