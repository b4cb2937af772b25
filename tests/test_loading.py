"""mlgrade.loading: finding the contract's files and turning .py / .ipynb into worker modules."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_raw_cell

from mlgrade.loading import find_file, load_file, names_used

ACCEPT = ["hw6.py", "hw6.ipynb"]
REFERENCE_MODULES = {"solution", "hw6_solution"}


def notebook(folder: Path, *cells, name: str = "hw6.ipynb") -> Path:
    """Write a notebook of cells: str -> code cell, ("md", text) -> markdown, ("raw", text) -> raw."""
    made = []
    for cell in cells:
        if isinstance(cell, tuple):
            made.append(new_markdown_cell(cell[1]) if cell[0] == "md" else new_raw_cell(cell[1]))
        else:
            made.append(new_code_cell(cell))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    nbformat.write(new_notebook(cells=made), str(path))
    return path


def load(folder: Path):
    return load_file(folder, ACCEPT, REFERENCE_MODULES)


def run(module) -> dict:
    """Execute the chunks as the worker does (here, in-process: the sources are ours)."""
    ns: dict = {}
    for label, source in module.chunks:
        exec(compile(source, label, "exec"), ns)
    return ns


# -- finding files ----------------------------------------------------------------------------

def test_py_file_is_loaded_as_one_chunk(tmp_path):
    (tmp_path / "hw6.py").write_text("def f():\n    return 1\nprint('training')\n")
    module = load(tmp_path)
    assert (module.name, module.file, module.error) == ("hw6", "hw6.py", None)
    assert module.chunks == [("hw6.py", "def f():\n    return 1\nprint('training')\n")]
    assert module.spec() == {"name": "hw6", "file": "hw6.py", "chunks": [["hw6.py", module.chunks[0][1]]]}


def test_not_submitted(tmp_path):
    (tmp_path / "other.py").write_text("x = 1\n")
    module = load(tmp_path)
    assert module.error.kind == "not_submitted"
    assert module.error.message == "hw6.py was not submitted"
    assert module.chunks == []


def test_empty_folder_is_not_submitted(tmp_path):
    assert load(tmp_path).error.message == "hw6.py was not submitted"


def test_py_is_preferred_over_ipynb(tmp_path):
    (tmp_path / "hw6.py").write_text("X = 'py'\n")
    notebook(tmp_path, "X = 'ipynb'")
    module = load(tmp_path)
    assert module.file == "hw6.py" and run(module)["X"] == "py"


def test_ipynb_is_accepted_when_no_py(tmp_path):
    notebook(tmp_path, "X = 'ipynb'")
    module = load(tmp_path)
    assert module.file == "hw6.ipynb" and run(module)["X"] == "ipynb"


def test_nested_submission_folders_shallowest_wins(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "hw6.py").write_text("X = 'deep'\n")
    (tmp_path / "z").mkdir()
    (tmp_path / "z" / "hw6.py").write_text("X = 'shallow'\n")
    module = load(tmp_path)
    assert run(module)["X"] == "shallow"
    assert find_file(tmp_path, ACCEPT) == tmp_path / "z" / "hw6.py"


def test_nested_zip_layout_is_found(tmp_path):
    (tmp_path / "submission" / "hw6").mkdir(parents=True)
    (tmp_path / "submission" / "hw6" / "hw6.py").write_text("X = 1\n")
    assert run(load(tmp_path))["X"] == 1


@pytest.mark.parametrize("ignored", ["__MACOSX", ".ipynb_checkpoints", "__pycache__"])
def test_metadata_folders_are_ignored(tmp_path, ignored):
    (tmp_path / ignored).mkdir()
    (tmp_path / ignored / "hw6.py").write_text("X = 'junk'\n")
    assert load(tmp_path).error.message == "hw6.py was not submitted"
    (tmp_path / "deep" / "er").mkdir(parents=True)
    (tmp_path / "deep" / "er" / "hw6.py").write_text("X = 'real'\n")
    assert run(load(tmp_path))["X"] == "real"


def test_oversized_file_is_refused(tmp_path):
    (tmp_path / "hw6.py").write_text("#" * ((5 << 20) + 1))
    module = load(tmp_path)
    assert module.error.kind == "unreadable"
    assert module.error.message == "hw6.py is larger than 5 MB"


def test_unreadable_notebook(tmp_path):
    (tmp_path / "hw6.ipynb").write_text("{not json")
    module = load(tmp_path)
    assert module.error.kind == "unreadable"
    assert module.error.message.startswith("hw6.ipynb is not a readable notebook (")


# -- syntax errors -------------------------------------------------------------------------------

def test_py_syntax_error_names_file_and_line(tmp_path):
    (tmp_path / "hw6.py").write_text("import numpy as np\n\ndef f(x)\n    return x\n")
    module = load(tmp_path)
    assert module.error.kind == "syntax"
    assert module.error.message == "hw6.py, line 3: SyntaxError: expected ':'"


def test_ipynb_syntax_error_names_file_cell_and_line(tmp_path):
    notebook(tmp_path, ("md", "# Homework"), "import numpy as np", "def f(x):\n    return x +* 1\n")
    module = load(tmp_path)
    assert module.error.kind == "syntax"
    assert module.error.message == "hw6.ipynb, cell 3, line 2: SyntaxError: invalid syntax"


def test_syntax_error_in_a_training_cell_still_fails(tmp_path):
    # a statement that would not be kept is still parsed: the student must fix it
    notebook(tmp_path, "for epoch in range(3)\n    pass\n")
    assert load(tmp_path).error.message == "hw6.ipynb, cell 1, line 1: SyntaxError: expected ':'"


# -- what a notebook keeps -------------------------------------------------------------------------

def test_magics_and_shell_lines_are_dropped(tmp_path):
    notebook(tmp_path,
             "%matplotlib inline\n!pip install torch\nfiles = !ls\nimport numpy as np\nnp.zeros?\n",
             "%%bash\nrm -rf /\n",
             "%%time\nSCALE = 2\n",
             "def f(x):\n    %time y = x\n    return x * SCALE\n")
    module = load(tmp_path)
    assert module.error is None
    ns = run(module)
    assert ns["f"](3) == 6
    assert [label for label, _ in module.chunks] == ["hw6.ipynb, cell 1", "hw6.ipynb, cell 3", "hw6.ipynb, cell 4"]
    assert "pip" not in module.source and "rm -rf" not in module.source and "ls" not in module.source


def test_training_loop_and_prints_are_not_executed(tmp_path):
    notebook(tmp_path,
             "import numpy as np\nLR = 0.1\nEPOCHS = 3 * 2\n",
             "def train(n):\n    return n * LR\n",
             "for epoch in range(EPOCHS):\n    raise SystemExit('training ran')\n",
             "history = train(EPOCHS)\nprint(history)\nraise RuntimeError('top level ran')\n",
             "model = Net()\nwith open('x') as fh:\n    pass\n")
    module = load(tmp_path)
    assert module.error is None
    ns = run(module)
    assert ns["LR"] == 0.1 and ns["EPOCHS"] == 6 and ns["train"](10) == 1.0
    assert "history" not in ns and "model" not in ns


def test_constants_kept_only_when_made_of_constants(tmp_path):
    notebook(tmp_path,
             "N: int = 4\nSHAPE = (N, 2)\nNAMES = ['a', 'b']\nTABLE = {'a': -1, 'b': N ** 2}\n",
             "DATA = load()\nDERIVED = DATA + 1\nX = Y = 3\na, b = 1, 2\n")
    ns = run(load(tmp_path))
    assert (ns["N"], ns["SHAPE"], ns["NAMES"], ns["TABLE"]) == (4, (4, 2), ["a", "b"], {"a": -1, "b": 16})
    assert ns["X"] == ns["Y"] == 3
    assert not {"DATA", "DERIVED", "a", "b"} & set(ns)


def test_line_numbers_match_the_cell(tmp_path):
    notebook(tmp_path, "x = compute()\n\ndef f():\n    raise ValueError('boom')\n")
    module = load(tmp_path)
    (label, source), = module.chunks
    assert label == "hw6.ipynb, cell 1"
    assert source.splitlines()[2] == "def f():"
    with pytest.raises(ValueError) as info:
        run(module)["f"]()
    assert info.traceback[-1].lineno + 1 == 4


def test_decorated_statements_and_try_imports(tmp_path):
    notebook(tmp_path,
             "import functools\n@functools.lru_cache\ndef f(x):\n    return x + 1\n",
             "try:\n    import not_a_module_xyz\nexcept ImportError:\n    pass\n",
             "try:\n    run_training()\nexcept Exception:\n    pass\n")
    ns = run(load(tmp_path))
    assert ns["f"](1) == 2
    assert "run_training" not in load(tmp_path).source


def test_markdown_and_raw_cells_are_skipped_but_counted(tmp_path):
    notebook(tmp_path, ("md", "x = ("), ("raw", "def ("), "", "Y = 1\n")
    module = load(tmp_path)
    assert module.error is None
    assert [label for label, _ in module.chunks] == ["hw6.ipynb, cell 4"]


# -- the reference may not be imported -----------------------------------------------------------

def test_import_solution_is_refused_in_a_notebook(tmp_path):
    notebook(tmp_path, "import numpy as np", ("md", "Exercise 1"), "import solution\nf = solution.f\n")
    module = load(tmp_path)
    assert module.error.kind == "imports_reference"
    assert module.error.message == (
        "hw6.ipynb, cell 3, line 1: imports `solution`, the course's reference solution, which is not "
        "available to submissions: your file must contain its own implementation")


@pytest.mark.parametrize("line,name", [
    ("from solution import f", "solution"),
    ("import solution.part as p", "solution.part"),
    ("from hw6_solution.sub import f", "hw6_solution.sub"),
])
def test_import_of_reference_is_refused_in_a_py_file(tmp_path, line, name):
    (tmp_path / "hw6.py").write_text(f"import numpy as np\n{line}\n")
    assert load(tmp_path).error.message == (
        f"hw6.py, line 2: imports `{name}`, the course's reference solution, which is not "
        "available to submissions: your file must contain its own implementation")


def test_import_inside_a_function_is_refused_too(tmp_path):
    (tmp_path / "hw6.py").write_text("def f():\n    import solution\n    return solution.f()\n")
    assert load(tmp_path).error.message.startswith("hw6.py, line 2: imports `solution`")


def test_similar_names_and_relative_imports_are_fine(tmp_path):
    (tmp_path / "hw6.py").write_text("import solutions_helper\nimport my_solution\n")
    assert load(tmp_path).error is None


# -- names_used -------------------------------------------------------------------------------------

def test_names_used_finds_names_attributes_imports_and_strings(tmp_path):
    source = ("import torch.nn.functional as F\n"
              "from sklearn.svm import SVC\n"
              "def f(x):\n"
              "    y = F.conv_transpose2d(x, x)\n"
              "    return getattr(F, 'pixel_shuffle')(y)\n")
    found = names_used([("hw6.py", source)], {"conv_transpose2d", "pixel_shuffle", "sklearn", "SVC"})
    assert sorted(found) == sorted([("sklearn", "hw6.py", 2), ("SVC", "hw6.py", 2),
                                    ("conv_transpose2d", "hw6.py", 4), ("pixel_shuffle", "hw6.py", 5)])


def test_names_used_of_a_loaded_notebook_names_the_cell(tmp_path):
    notebook(tmp_path, "import numpy as np", "from sklearn.svm import SVC\n")
    module = load(tmp_path)
    assert names_used(module.chunks, {"SVC"}) == [("SVC", "hw6.ipynb, cell 2", 1)]


def test_nothing_is_executed_while_loading(tmp_path):
    marker = tmp_path / "ran"
    (tmp_path / "hw6.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    notebook(tmp_path / "nb", f"open({str(marker)!r}, 'w').close()\n")
    load(tmp_path)
    load(tmp_path / "nb")
    assert not marker.exists()
    assert re.search("ran", load(tmp_path).source)
