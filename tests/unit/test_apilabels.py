"""Static API labels of DS-1000 reference solutions, against a small hand-made list of documented names."""
from spark_eval.memory.docs.apilabels import ApiNames, api_labels, names_api
from spark_eval.types import Problem

NAMES = ApiNames({
    "Pandas": ["pandas", "pandas.DataFrame", "pandas.DataFrame.groupby", "pandas.DataFrame.aggregate",
               "pandas.DataFrame.index", "pandas.DataFrame.items", "pandas.Series.iloc", "pandas.Series.copy",
               "pandas.core.groupby.DataFrameGroupBy.aggregate", "pandas.core.groupby.GroupBy.agg",
               "pandas.Index.append", "pandas.read_csv"],
    "Numpy": ["numpy", "numpy.argsort", "numpy.array", "numpy.linalg", "numpy.linalg.norm", "numpy.random",
              "numpy.random.permutation", "numpy.multiply", "numpy.percentile", "numpy.ndarray.reshape"],
    "Scipy": ["scipy.stats", "scipy.stats.ttest_ind", "scipy.stats.norm", "scipy.sparse.coo_array.reshape"],
    "Sklearn": ["sklearn.linear_model.LinearRegression", "sklearn.linear_model.LinearRegression.fit",
                "sklearn.base.TransformerMixin.fit_transform", "sklearn.preprocessing.StandardScaler",
                "sklearn.preprocessing.StandardScaler.transform"],
    "Pytorch": ["torch.nn.functional.softmax", "torch.Tensor.view", "torch.Tensor.reshape"],
})


def problem(reference: str, exec_context: str = "[insert]", library: str = "Pandas", inputs: str = "") -> Problem:
    """A problem whose code context is DS-1000's shape: `define_test_input` (with `inputs`) and `exec_context`."""
    body = "\n".join("        " + line for line in inputs.splitlines()) or "        pass"
    context = (f"import numpy as np\nimport pandas as pd\nfrom scipy import sparse\n\n\n"
               f"def generate_test_case(test_case_id):\n    def define_test_input(test_case_id):\n{body}\n"
               f"        return {inputs.split('=')[0].strip() or 'None'}\n\n\nexec_context = r\"\"\"\n{exec_context}\n\"\"\"\n")
    return Problem(0, library, "Origin", (library, 0), "", reference, context, 1)


def test_import_aliases_and_attribute_chains_resolve_to_qualified_names():
    context = "import numpy as np\nimport torch.nn.functional as F\na = test_input\n[insert]"
    reference = "order = np.argsort(a)\nn = np.linalg.norm(a)\np = F.softmax(a, dim=1)\n"
    assert api_labels(problem(reference, context, "Numpy"), NAMES) == (
        "numpy.argsort", "numpy.linalg.norm", "torch.nn.functional.softmax")  # not the module numpy.linalg


def test_from_imports_constructors_and_their_methods():
    reference = ("from scipy import stats\nfrom sklearn.linear_model import LinearRegression\n"
                 "p = stats.ttest_ind(a, b).pvalue\nmodel = LinearRegression()\nmodel.fit(a, b)\n"
                 "z = stats.norm.ppf(0.9)\n")  # a method of a documented object without members: the object
    assert api_labels(problem(reference, library="Scipy"), NAMES) == (
        "scipy.stats.norm", "scipy.stats.ttest_ind", "sklearn.linear_model.LinearRegression",
        "sklearn.linear_model.LinearRegression.fit")


def test_a_chained_method_on_a_dataframe_follows_the_type_of_each_step():
    # df is typed by the code context's test input; `.agg` on its groups is the groups' (documented as
    # `aggregate`), not DataFrame.aggregate; `.iloc` of a DataFrame is documented under Series
    reference = "result = df.groupby('a').agg('sum')\nfirst = df.iloc[0]\n"
    typed = problem(reference, "import pandas as pd\ndf = test_input\n[insert]", inputs="df = pd.DataFrame({'a': [1]})")
    assert api_labels(typed, NAMES) == ("pandas.DataFrame.groupby", "pandas.Series.iloc",
                                        "pandas.core.groupby.DataFrameGroupBy.aggregate")
    # a member a DataFrame does not have is not looked up on unrelated pandas classes (Index.append)
    assert api_labels(problem("df2 = pd.read_csv('f').append(df)\n"), NAMES) == ("pandas.read_csv",)


def test_methods_of_arrays_and_tensors():
    assert api_labels(problem("b = np.array(a).reshape(-1)\n", library="Numpy"), NAMES) == (
        "numpy.array", "numpy.ndarray.reshape")
    # t's type is unknown: the problem's library's main class first
    assert api_labels(problem("y = t.view(-1, 1)\n", library="Pytorch"), NAMES) == ("torch.Tensor.view",)
    assert api_labels(problem("y = t.reshape(-1, 1)\n", library="Numpy"), NAMES) == ("numpy.ndarray.reshape",)
    # in a SciPy problem an object of unknown type is an ndarray first; an input that define_test_input made
    # with a scipy.sparse factory is a sparse matrix (whose reshape the walk documents under coo_array)
    context = "from scipy import sparse\nM = test_input\n[insert]"
    assert api_labels(problem("d = M.reshape(1, 9)\n", context, "Scipy"), NAMES) == ("numpy.ndarray.reshape",)
    sparse_input = problem("d = M.reshape(1, 9)\n", context, "Scipy", inputs="sA = sparse.random(3, 3)")
    assert api_labels(sparse_input, NAMES) == ("scipy.sparse.coo_array.reshape",)


def test_undocumented_names_modules_builtins_and_literals_give_no_label():
    reference = ("np.random.seed(0)\nx = np.frobnicate(a)\nm = np.random\nrows = [1, 2]\nrows.index(2)\n"
                 "cols = list(a)\ncols.index(1)\nd = {}\nfor k, v in d.items():\n    pass\n', '.join(['a'])\n")
    # pandas.DataFrame.index and .items are documented, but these are lists' and a dict's
    assert api_labels(problem(reference, "import numpy as np\n[insert]", "Numpy"), NAMES) == ()
    assert api_labels(problem("x = np.multiply.reduce(a)\n", library="Numpy"), NAMES) == ("numpy.multiply",)


def test_only_the_reference_is_labelled_and_its_defensive_copy_is_not():
    context = "import numpy as np\norder = np.argsort(a)\n[insert]\nb = np.array(result)"
    assert api_labels(problem("result = np.linalg.norm(a)\n", context, "Numpy"), NAMES) == ("numpy.linalg.norm",)
    boilerplate = "def g(df):\n    return df.groupby('a').agg('sum')\n\nresult = g(df.copy())\n"
    assert "pandas.Series.copy" not in api_labels(problem(boilerplate), NAMES)
    assert api_labels(problem("kept = df.copy()\n"), NAMES) == ("pandas.Series.copy",)  # a copy it makes


def test_a_reference_that_does_not_parse_has_no_labels():
    assert api_labels(problem("result = np.argsort(a\n", library="Numpy"), NAMES) == ()
    assert api_labels(problem("result = np.argsort(a)\n", "import numpy as np\nif x:\n[insert]"), NAMES) == ()
    bare = Problem(0, "Numpy", "Origin", ("Numpy", 0), "", "r = np.argsort(a)\n", "not python (", 1)
    assert api_labels(bare, NAMES) == ("numpy.argsort",)  # no code context: the reference alone, usual aliases


def test_real_ds1000_references(problems):
    names = ApiNames({"Numpy": ["numpy.percentile", "numpy.random.permutation"], "Pandas": ["pandas.Series.iloc",
                                                                                            "pandas.Series.copy"]})
    by_id = {p.problem_id: p for p in problems}
    assert api_labels(by_id[300], names) == ("numpy.percentile",)  # result = np.percentile(a, p)
    assert api_labels(by_id[0], names) == ("pandas.Series.iloc",)  # return df.iloc[List] ... g(df.copy(), List)


def test_advice_names_a_label_as_code_does_and_prose_does_not():
    labels = ("numpy.argsort", "pandas.DataFrame.apply", "pandas.DataFrame.aggregate", "pandas.read_csv",
              "sklearn.preprocessing.MinMaxScaler", "numpy.ndarray.mean")
    assert names_api("Use np.argsort(a) then df.agg('sum').", labels) == (
        "numpy.argsort", "pandas.DataFrame.aggregate")  # `agg` is how code spells the documented `aggregate`
    assert names_api("apply the mask, then take the mean of what is left", labels) == ()  # English, not code
    assert names_api("Call `apply` row-wise; mean(x) is wrong here.", labels) == (
        "numpy.ndarray.mean", "pandas.DataFrame.apply")
    assert names_api("Scale with MinMaxScaler after read_csv.", labels) == (
        "pandas.read_csv", "sklearn.preprocessing.MinMaxScaler")  # names no English word can be
    assert names_api("use argsorted values, not np.argsortx", labels) == ()  # whole names only
    assert names_api("anything", ()) == ()


def test_advice_is_credited_for_its_own_words_not_the_cited_documents_appended_to_it():
    from spark_eval.memory.agent import CITED_LINE, own_words

    advice = "Reverse each row of the argsort result." + CITED_LINE + "`numpy.argsort`."
    assert own_words(advice) == "Reverse each row of the argsort result."
    assert names_api(advice, ("numpy.argsort",)) and not names_api(own_words(advice), ("numpy.argsort",))
    assert own_words("Use `np.argsort(a)`.") == "Use `np.argsort(a)`."
