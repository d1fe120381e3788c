"""The documentation builder: docstring chunking, the API walk on a small fake package, and a real walk."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from spark_eval.types import LIBRARY_MODULES
from spark_eval.memory.docs.walk import DOCWALK, chunk_object, chunks_hash, split_text, walk_library

NUMPYDOC = """Matrix or vector norm.

This function returns one of eight different matrix norms.

Parameters
----------
x : array_like
    Input array.
ord : {non-zero int, inf, -inf, 'fro', 'nuc'}, optional
    Order of the norm.

Returns
-------
n : float or ndarray
    Norm of the matrix or vector(s).

See Also
--------
scipy.linalg.norm : Similar function in SciPy.

Examples
--------
>>> np.linalg.norm([3, 4])
5.0"""

GOOGLE = """Adds `other` to `input`.

Args:
    input (Tensor): the input tensor.
    other (Tensor or Number): the tensor or number to add.

Keyword args:
    out (Tensor, optional): the output tensor.

Returns:
    A tensor.

Example::

    >>> torch.add(a, 20)"""


def chunks_of(doc, signature="(x)", qualname="numpy.linalg.norm", cap=1500):
    entry = {"qualname": qualname, "objtype": "function", "signature": signature, "doc": doc}
    return chunk_object(entry, "Numpy", "numpy", "1.26.4", cap=cap)


def test_libraries_are_the_seven_of_ds1000():
    assert LIBRARY_MODULES == {"Pandas": "pandas", "Numpy": "numpy", "Matplotlib": "matplotlib", "Tensorflow": "tensorflow",
                         "Scipy": "scipy", "Sklearn": "sklearn", "Pytorch": "torch"}


def test_numpydoc_gives_an_overview_then_one_chunk_per_section():
    chunks = chunks_of(NUMPYDOC)
    assert [c.id for c in chunks] == [f"doc:numpy:numpy.linalg.norm#{s}"
                                      for s in ("overview", "parameters", "returns", "see-also", "examples")]
    overview, parameters = chunks[0], chunks[1]
    assert overview.text.startswith("numpy.linalg.norm(x)\n\nMatrix or vector norm.")
    assert "Parameters" not in overview.text and "eight different" in overview.text
    assert parameters.text.startswith("numpy.linalg.norm — Parameters\n\nx : array_like\n    Input array.")
    assert "-----" not in parameters.text and "Returns" not in parameters.text
    assert chunks[3].title == "numpy.linalg.norm — See Also"
    assert {(c.library, c.version, c.objtype, c.qualname) for c in chunks} == {
        ("Numpy", "1.26.4", "function", "numpy.linalg.norm")}


def test_google_style_headers_split_and_are_dedented():
    chunks = chunks_of(GOOGLE, signature="(input, other, *, alpha=1, out=None) -> Tensor", qualname="torch.add")
    assert [c.section for c in chunks] == ["overview", "parameters", "keyword-args", "returns", "examples"]
    assert chunks[1].text == ("torch.add — Args\n\ninput (Tensor): the input tensor.\n"
                              "other (Tensor or Number): the tensor or number to add.")
    assert chunks[4].text.endswith(">>> torch.add(a, 20)")
    assert chunks[0].text == "torch.add(input, other, *, alpha=1, out=None) -> Tensor\n\nAdds `other` to `input`."


def test_prose_that_merely_ends_with_a_colon_is_not_a_header():
    chunks = chunks_of("Summary.\n\nFor example:\n\n>>> f(1)\n\nArgs:\n    x: a value.")
    assert [c.section for c in chunks] == ["overview", "parameters"]
    assert "For example:" in chunks[0].text


def test_long_sections_are_split_at_entry_boundaries_with_part_ids():
    params = "\n".join(f"p{i} : int\n    Parameter number {i}, described at some length here." for i in range(40))
    chunks = chunks_of(f"Summary.\n\nParameters\n----------\n{params}", cap=400)
    parts = [c for c in chunks if c.section == "parameters"]
    assert len(parts) > 3
    assert parts[0].id == "doc:numpy:numpy.linalg.norm#parameters"
    assert [c.id.rsplit("/", 1)[1] for c in parts[1:]] == [f"p{k}" for k in range(2, len(parts) + 1)]
    assert parts[1].text.startswith("numpy.linalg.norm — Parameters (part 2)\n\np")
    bodies = [c.text.split("\n\n", 1)[1] for c in parts]
    assert all(len(body) <= 400 for body in bodies)
    assert all(body.startswith("p") and body.endswith("here.") for body in bodies)  # whole entries only
    assert "\n".join(bodies) == params


def test_split_text_prefers_paragraphs_and_cuts_an_overlong_line():
    assert split_text("a" * 10 + "\n\n" + "b" * 10, 15) == ["a" * 10, "b" * 10]
    assert split_text("c" * 25, 10) == ["c" * 10, "c" * 10, "c" * 5]


def test_repeated_sections_get_distinct_ids():
    chunks = chunks_of("Summary.\n\nExample:\n    f(1)\n\nExamples:\n    f(2)")
    assert [c.section for c in chunks] == ["overview", "examples", "examples-2"]


def test_undocumented_objects_keep_their_signature_only():
    assert [c.text for c in chunks_of("", signature="(a, b=1)")] == ["numpy.linalg.norm(a, b=1)"]
    assert chunks_of("", signature=None) == []


def test_chunks_hash_covers_text_and_order():
    chunks = chunks_of(NUMPYDOC)
    changed = chunks_of(NUMPYDOC.replace("Input array.", "Input."))
    assert chunks_hash(chunks) == chunks_hash(chunks_of(NUMPYDOC))
    assert chunks_hash(changed) != chunks_hash(chunks)
    assert chunks_hash(chunks[::-1]) != chunks_hash(chunks)


FAKE_PACKAGE = {
    "__init__.py": '''
        """A fake library."""
        from fakelib import sub
        from fakelib.core import Base, Child, helper

        __all__ = ["Base", "Child", "helper", "old", "sub"]


        def old():
            """DEPRECATED: use helper."""


        def not_exported():
            """Defined here, so public although __all__ leaves it out."""


        def _private():
            """Private."""
        ''',
    "core.py": '''
        """Core."""
        import json


        class Base:
            """A base class."""

            def shared(self):
                """Shared by every subclass."""

            @property
            def size(self):
                """The size."""

            def _hidden(self):
                """Hidden."""


        class Child(Base):
            """A child class."""

            def own(self):
                """Its own method."""


        def helper(a, b=1):
            """Help."""


        alias = helper
        ''',
    "sub/__init__.py": '"""A subpackage."""\nfrom fakelib.core import helper as helper_again\n',
    "tests/__init__.py": 'def test_nothing():\n    """A test."""\n',
}


def test_docwalk_lists_each_public_object_once_under_its_canonical_name(tmp_path):
    for name, source in FAKE_PACKAGE.items():
        path = tmp_path / "fakelib" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run([sys.executable, str(DOCWALK), "fakelib"], capture_output=True, text=True, env=env, check=True)
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [(r["qualname"], r["objtype"]) for r in rows] == [
        ("fakelib", "module"), ("fakelib.Base", "class"), ("fakelib.Base.shared", "method"),
        ("fakelib.Base.size", "property"), ("fakelib.Child", "class"), ("fakelib.Child.own", "method"),
        ("fakelib.core", "module"), ("fakelib.helper", "function"), ("fakelib.not_exported", "function"),
        ("fakelib.sub", "module"),
    ]
    assert rows[7]["signature"] == "(a, b=1)" and rows[7]["doc"] == "Help."
    assert '"deprecated": 1' in out.stderr


@pytest.mark.grading_env
def test_walking_a_small_library_twice_gives_the_same_chunks(grading_python):
    probe = subprocess.run([grading_python, "-c", "import cycler"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("cycler (a matplotlib dependency) is not installed in the grading environment")
    first, second = walk_library(grading_python, "cycler"), walk_library(grading_python, "cycler")
    assert first == second and chunks_hash(first) == chunks_hash(second)
    assert 8 <= len(first) <= 200
    assert len({c.id for c in first}) == len(first)
    assert all(c.text.startswith(c.qualname) and c.id.startswith(f"doc:cycler:{c.qualname}#") for c in first)
    assert "doc:cycler:cycler.Cycler#overview" in {c.id for c in first}
