"""mlgrade.loading: finding the contract's files and turning .py / .ipynb into worker modules."""
from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_raw_cell

from mlgrade import loading
from mlgrade.loading import load_file, names_used
from mlgrade.staging import find_file

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


def test_of_a_py_and_a_notebook_saved_together_the_py_is_graded_and_the_choice_said(tmp_path):
    (tmp_path / "hw6.py").write_text("X = 'py'\n")
    notebook(tmp_path, "X = 'ipynb'")
    for path in (tmp_path / "hw6.py", tmp_path / "hw6.ipynb"):
        os.utime(path, (1_700_000_000, 1_700_000_000))
    module = load(tmp_path)
    assert module.file == "hw6.py" and run(module)["X"] == "py"
    assert module.chosen == ("Graded hw6.py, not hw6.ipynb: both were saved at the same time, and it comes first. "
                             "To have the other graded, delete this one (or save the other last).")


@pytest.mark.parametrize("last", ["hw6.py", "hw6.ipynb"])
def test_of_a_py_and_a_notebook_the_one_saved_last_is_graded(tmp_path, last):
    """The bundle ships both: a student who finished the notebook beside the untouched template
    .py has the notebook graded, and the other way round."""
    (tmp_path / "hw6.py").write_text("X = 'py'\n")
    notebook(tmp_path, "X = 'ipynb'")
    os.utime(tmp_path / last, (2_000_000_000, 2_000_000_000))
    module = load(tmp_path)
    other = "hw6.ipynb" if last == "hw6.py" else "hw6.py"
    assert module.file == last and run(module)["X"] == last.split(".")[1]
    assert module.chosen == (f"Graded {last}, not {other}: it was saved last. "
                             "To have the other graded, delete this one (or save the other last).")
    assert find_file(tmp_path, ACCEPT) == tmp_path / last


def test_a_single_file_needs_no_word_on_the_choice(tmp_path):
    (tmp_path / "hw6.py").write_text("X = 'py'\n")
    assert load(tmp_path).chosen == ""


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


def test_an_annotated_constant_is_kept_only_when_its_annotation_runs_nothing(tmp_path):
    # the annotation of a module-level constant is evaluated: a call, subscript or attribute there
    # is a statement that runs, so the whole line goes, like any other statement
    notebook(tmp_path,
             "calls = []\ndef _boom():\n    calls.append(1)\n    return int\n",
             "LIMIT: _boom() = 1\nSIZES: list[int] = [1]\nDT: calls.append(2) = 3\n",
             "N: int = 4\nM: 'float' = 2.5\n")
    module = load(tmp_path)
    ns = run(module)
    assert (ns["N"], ns["M"]) == (4, 2.5)
    assert not {"LIMIT", "SIZES", "DT"} & set(ns) and ns["calls"] == []
    assert "_boom() = 1" not in module.source


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

def test_a_notebook_function_that_still_calls_solution_is_named_and_the_others_graded(tmp_path):
    notebook(tmp_path, "import numpy as np\nimport solution as sol", ("md", "Exercise 1"),
             "def pca(z, x, d):\n    # TODO\n    return sol.pca(z, x, d)\n",
             "def err(x):\n    return 2 * x\n",
             "class Net:\n    def f(self):\n        from hw6_solution.nets import f\n        return f()\n",
             "f = sol.f\nsol.vis10(1)")
    module = load(tmp_path)
    assert module.error is None
    assert module.unavailable == {
        "pca": "pca still calls `sol.pca` (hw6.ipynb, cell 3, line 3), the course's reference solution, which "
               "is not available to submissions: replace it by your own implementation",
        "Net": "Net still calls `hw6_solution.nets` (hw6.ipynb, cell 5, line 3), the course's reference "
               "solution, which is not available to submissions: replace it by your own implementation",
        # a name bound to the reference's object is unavailable too
        "f": "f still calls `sol.f` (hw6.ipynb, cell 6, line 1), the course's reference solution, which is not "
             "available to submissions: replace it by your own implementation"}
    ns = run(module)  # the import is not run; the other functions work
    assert "sol" not in ns and ns["err"](2) == 4


def test_a_notebook_that_only_imports_solution_loads(tmp_path):
    notebook(tmp_path, "import numpy as np", "from solution import f\n", "def g():\n    return 1\n")
    module = load(tmp_path)
    assert module.error is None and module.unavailable == {
        "f": "f still calls `solution.f` (hw6.ipynb, cell 2, line 1), the course's reference solution, which is "
             "not available to submissions: replace it by your own implementation"}
    assert "solution" not in module.source


def test_a_name_taken_from_solution_and_then_defined_is_graded(tmp_path):
    notebook(tmp_path, "from solution import f\n", "def f():\n    return 1\n")
    assert load(tmp_path).unavailable == {}


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


# -- regular files only ------------------------------------------------------------------------------

REFERENCE = Path(__file__).resolve().parent.parent / "reference" / "ml-hw6" / "hw6.py"
LINK = "hw6.py is a symbolic link; submit the file itself"


@pytest.mark.parametrize("target", [str(REFERENCE), "../elsewhere/hw6.py", "/dev/zero", "/etc/shadow", "missing.py"])
def test_a_symbolic_link_is_refused_never_followed(tmp_path, target):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "hw6.py").write_text("X = 'followed'\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "hw6.py").symlink_to(target)
    module = load(tmp_path / "sub")
    assert (module.error.kind, module.error.message, module.chunks) == ("unreadable", LINK, [])


def test_a_link_through_proc_self_cwd_is_refused(tmp_path):
    (tmp_path / "hw6.py").symlink_to("/proc/self/cwd/" + os.path.relpath(REFERENCE))
    assert load(tmp_path).error.message == LINK


def test_a_linked_notebook_never_shows_what_it_points_to(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET first characters")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "hw6.ipynb").symlink_to(secret)
    assert load(tmp_path / "sub").error.message == "hw6.ipynb is a symbolic link; submit the file itself"


def test_a_folder_under_the_contract_name_is_refused(tmp_path):
    (tmp_path / "hw6.py").mkdir()
    (tmp_path / "hw6.py" / "hw6.py").write_text("X = 1\n")
    assert load(tmp_path).error.message == "hw6.py is a folder, not a file; submit the file itself"


def test_a_named_pipe_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "hw6.py")
    signal.alarm(10)  # a blocking open would hang the test, not fail it
    try:
        module = load(tmp_path)
    finally:
        signal.alarm(0)
    assert module.error.message == "hw6.py is a named pipe, not a file; submit the file itself"


def test_a_device_is_refused(tmp_path):
    try:
        os.mknod(tmp_path / "hw6.py", stat.S_IFCHR | 0o644, os.makedev(1, 5))  # /dev/zero's numbers
    except PermissionError:
        pytest.skip("creating a device needs root")
    assert load(tmp_path).error.message == "hw6.py is a device, not a file; submit the file itself"


def test_linked_folders_are_not_searched(tmp_path):
    (tmp_path / "sub").symlink_to(REFERENCE.parent, target_is_directory=True)
    assert find_file(tmp_path, ACCEPT) is None
    assert load(tmp_path).error.message == "hw6.py was not submitted"


def test_unreadable_notebook_message_shows_no_contents(tmp_path):
    (tmp_path / "hw6.ipynb").write_text("SECRET-CONTENT, not JSON")
    assert load(tmp_path).error.message == "hw6.ipynb is not a readable notebook (JSON error at line 1, column 1)"
    (tmp_path / "hw6.ipynb").write_text('{"cells": "SECRET-CONTENT"}')
    assert "SECRET" not in load(tmp_path).error.message


# -- parsing within bounds -------------------------------------------------------------------------

@pytest.mark.parametrize("expression", ["1+" * 6000 + "1", "-" * 12000 + "1", "not " * 3000 + "x", "f" + "()" * 6000])
def test_a_long_expression_is_a_load_error_not_a_crash(tmp_path, expression):
    (tmp_path / "hw6.py").write_text(f"import numpy as np\nx = {expression}\n")
    module = load(tmp_path)
    assert (module.error.kind, module.error.message) == (
        "syntax", "hw6.py: an expression is too long or too deeply nested to be read; split it into several statements")
    notebook(tmp_path / "nb", "import numpy as np", f"x = {expression}\n")
    assert load(tmp_path / "nb").error.message == (
        "hw6.ipynb, cell 2: an expression is too long or too deeply nested to be read; split it into several statements")


def test_deeply_nested_brackets_are_a_syntax_error(tmp_path):
    (tmp_path / "hw6.py").write_text("x = " + "(" * 5000 + ")" * 5000 + "\n")
    assert load(tmp_path).error.message == "hw6.py, line 1: SyntaxError: too many nested parentheses"
    (tmp_path / "hw6.py").write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    assert load(tmp_path).error.message == "hw6.py, line 1: SyntaxError: too many nested parentheses"


def test_a_constant_too_deep_to_judge_is_blanked(tmp_path):
    # parses, but deeper than the constant check can follow: not kept, like any statement it cannot judge
    notebook(tmp_path, "A = 1\nX = " + "1+" * 2000 + "1\nB = 2\n")
    module = load(tmp_path)
    assert module.error is None
    assert run(module) == {"__builtins__": run(module)["__builtins__"], "A": 1, "B": 2}


def test_too_many_tokens_are_refused_before_parsing(tmp_path):
    (tmp_path / "hw6.py").write_text("x = [" + "1," * 60_000 + "]\n")
    assert load(tmp_path).error.message == "hw6.py is too long to grade: more than 100000 tokens of code"
    notebook(tmp_path / "nb", *["x = [" + "1," * 20_000 + "]"] * 3)
    assert load(tmp_path / "nb").error.message == "hw6.ipynb is too long to grade: more than 100000 tokens of code"


def test_too_many_cells_or_values_are_refused_before_parsing(tmp_path):
    notebook(tmp_path, *["X = 1"] * (loading.MAX_CELLS + 1))
    assert load(tmp_path).error.message == "hw6.ipynb has more than 5000 cells"
    cell = new_code_cell("X = 1", outputs=[nbformat.v4.new_output("stream", text="[],\n" * 400_000)])
    nbformat.write(new_notebook(cells=[cell]), str(tmp_path / "nb.ipynb"))
    (tmp_path / "nb").mkdir()
    os.replace(tmp_path / "nb.ipynb", tmp_path / "nb" / "hw6.ipynb")
    assert load(tmp_path / "nb").error.message == (
        "hw6.ipynb holds too much to be read (more than 1000000 JSON values, mostly outputs): "
        "clear its outputs and submit it again")


def test_outputs_are_dropped_before_the_notebook_is_validated(tmp_path):
    cell = new_code_cell("X = 1", outputs=[nbformat.v4.new_output("stream", text="x" * 1000)])
    nbformat.write(new_notebook(cells=[cell]), str(tmp_path / "hw6.ipynb"))
    assert run(load(tmp_path))["X"] == 1


PARSE_MEMORY_SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from mlgrade.loading import load_file

    def high_water():  # kB; VmHWM, not ru_maxrss, which Linux keeps across exec (the forking test runner's)
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))

    base = high_water()
    messages = [load_file(Path(folder), ["hw6.py", "hw6.ipynb"]).error.message for folder in sys.argv[1:]]
    peak = high_water()
    print(json.dumps({"messages": messages, "base_mb": base / 1024, "peak_mb": peak / 1024}))
""")


def _write_repeated(path: Path, head: bytes, unit: bytes, size: int, tail: bytes) -> None:
    """A big file written in pieces (the test process never holds it whole)."""
    path.parent.mkdir(parents=True)
    with open(path, "wb") as fh:
        fh.write(head)
        block = unit * ((1 << 20) // len(unit))
        for _ in range(size // len(block)):
            fh.write(block)
        fh.write(tail)


def test_parsing_a_hostile_submission_stays_within_memory(tmp_path):
    """A 95 MB notebook of tiny cells took the grading process past 768 MB, a 5 MB `1,1,...` file to 2.4 GB."""
    cell = b'{"cell_type": "code", "execution_count": null, "metadata": {}, "outputs": [], "source": "x"},'
    _write_repeated(tmp_path / "cells" / "hw6.ipynb", b'{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [',
                    cell, 95 << 20, cell[:-1] + b"]}")
    _write_repeated(tmp_path / "values" / "hw6.ipynb", b'{"nbformat": 4, "nbformat_minor": 5, "metadata": {"x": [',
                    b"[],", 95 << 20, b'[]]}, "cells": []}')
    _write_repeated(tmp_path / "tokens" / "hw6.py", b"x = (", b"1,", (5 << 20) - (1 << 20), b")\n")
    done = subprocess.run([sys.executable, "-c", PARSE_MEMORY_SCRIPT, *(str(tmp_path / f) for f in ("cells", "values", "tokens"))],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["messages"] == [
        "hw6.ipynb has more than 5000 cells",
        "hw6.ipynb holds too much to be read (more than 1000000 JSON values, mostly outputs): "
        "clear its outputs and submit it again",
        "hw6.py is too long to grade: more than 100000 tokens of code"]
    # each file is read once (95 MB of bytes), nothing is built from it
    assert report["peak_mb"] - report["base_mb"] < 150, report
    assert report["peak_mb"] < 384, report


def test_one_rule_finds_a_contract_file_for_every_command(tmp_path):
    """mlgrade run, grade and validate find the same file: the preferred name first, then the
    shallowest, then the first in sorted order; metadata folders are never the submission."""
    for folder in ("a/b", "z", "y", "__MACOSX", ".ipynb_checkpoints"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "hw6.py").write_text("X = 1\n")
    (tmp_path / "hw6.ipynb").write_text("{}")
    assert find_file(tmp_path, ACCEPT) == tmp_path / "y" / "hw6.py"
    assert find_file(tmp_path, ("hw6.ipynb", "hw6.py")) == tmp_path / "hw6.ipynb"
    for folder in ("a/b", "z", "y"):
        (tmp_path / folder / "hw6.py").unlink()
    assert find_file(tmp_path, ACCEPT) == tmp_path / "hw6.ipynb"  # hw6.py is left in metadata folders only
    assert find_file(tmp_path, ("hw6.py",)) is None


@pytest.mark.parametrize("line, name", [("import mlgrade", "mlgrade"),
                                        ("from mlgrade.assignments.ml2_sheet10.oracles import pca_by_eigh",
                                         "mlgrade.assignments.ml2_sheet10.oracles"),
                                        ("import numpy, mlgrade.probes", "mlgrade.probes")])
def test_a_submission_importing_mlgrade_is_refused_with_a_message(tmp_path, line, name):
    (tmp_path / "hw6.py").write_text(f"import numpy as np\n\n\ndef f():\n    {line}\n")
    module = load_file(tmp_path, ["hw6.py"])
    assert module.error.kind == "imports_mlgrade"
    assert module.error.message == (f"hw6.py, line 5: imports `{name}`, the autograder's own package, which "
                                    "submissions may not use: remove that import (your file must compute its "
                                    "answers itself)")
