"""docs/layout.md names every file of the code, and only files that are there: the course's files
in its first table, each folder's files in the folder's row of the second (the test files, one
for each module, aside), and the NumPy MLP's signature as mlp_numpy.py has it."""
import ast
import inspect
import os
import re

import numpy as np
import pytest

import mlp_numpy
from helpers import REPO

PAGE = os.path.join(REPO, "docs", "layout.md")
CODE = (".py", ".job", ".sh")


def table(heading):
    """{first cell: the rest of its row} of the table under ## heading."""
    with open(PAGE, encoding="utf-8") as f:
        section = f.read().split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.split(" | ", 1) for line in section.splitlines() if line.startswith("| `")]
    return {first.strip("| "): rest for first, rest in rows}


def files_named(text):
    return set(re.findall(r"`(\w+(?:\.py|\.job|\.sh))`", text))


def code_folders():
    """Each folder that holds code, as 'training/' (not the results, the data, caches)."""
    found = set()
    for folder, subfolders, files in os.walk(REPO):
        subfolders[:] = [name for name in subfolders
                         if not name.startswith((".", "__")) and name not in ("data", "results")]
        if folder != REPO and any(name.endswith(CODE) for name in files):
            found.add(os.path.relpath(folder, REPO) + "/")
    return sorted(found)


def files_of(folder):
    """The code files of folder that the page names: a package's __init__.py and the test files
    (docs/tests.md's) aside."""
    return {name for name in os.listdir(os.path.join(REPO, folder)) if name.endswith(CODE)
            and name != "__init__.py" and not name.startswith("test_")}


def test_the_course_table_names_exactly_the_top_level_files():
    named = set().union(*map(files_named, table("The course's files")))
    assert named == {name for name in os.listdir(REPO) if name.endswith(".py")}


def test_every_folder_of_code_has_a_row_and_every_row_a_folder():
    rows = set(table("The packages"))
    assert set(code_folders()) <= {row.strip("`") for row in rows}
    for row in rows:
        assert os.path.isdir(os.path.join(REPO, row.strip("`"))), row


@pytest.mark.parametrize("folder", code_folders())
def test_a_folders_row_names_exactly_its_files(folder):
    named = files_named(table("The packages").get(f"`{folder}`", ""))
    assert named - files_of(folder) == set(), "named in docs/layout.md, but not in the folder"
    assert files_of(folder) - named == set(), "in the folder, but not named in docs/layout.md"


def test_the_models_signature_is_mlp_numpys():
    """Every argument in order, and each default by value (float64 being NumPy's)."""
    row = table("The course's files")["`mlp_numpy.py`"]
    call = ast.parse(re.search(r"`(MLP\(.*?\))`", row).group(1), mode="eval").body
    documented = [(arg.id, inspect.Parameter.empty) for arg in call.args]
    documented += [(keyword.arg, np.float64 if ast.unparse(keyword.value) == "float64"
                    else ast.literal_eval(keyword.value)) for keyword in call.keywords]
    parameters = inspect.signature(mlp_numpy.MLP).parameters.values()
    assert documented == [(parameter.name, parameter.default) for parameter in parameters]
