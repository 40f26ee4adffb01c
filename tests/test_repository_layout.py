"""The repository's shape, kept by tests: the course's files at the top and every extra in a
folder named for its job, imports running one way (down the data's flow: data -> preprocessing
-> model -> loop -> run folder -> report), and files and functions short enough to read."""
import ast
import os
import subprocess
import sys

import pytest

from helpers import REPO

COURSE_FILES = {"modules.py", "mlp_numpy.py", "mlp_pytorch.py", "train_mlp_numpy.py",
                "train_mlp_pytorch.py", "cifar10_utils.py", "unittests.py"}
# each part of the code, and the parts it may import: only those further down the flow
MAY_IMPORT = {
    "safety": set(),
    "dataset": {"safety"},
    "modules": set(),
    "mlp_numpy": {"modules"},
    "mlp_pytorch": set(),
    "training": {"safety", "dataset", "modules", "mlp_numpy", "mlp_pytorch", "training"},
    # the course's data interface: the dataset, batched with the course's normalization
    "cifar10_utils": {"dataset", "training"},
    "train_mlp_numpy": {"safety", "dataset", "cifar10_utils", "modules", "mlp_numpy", "training"},
    "train_mlp_pytorch": {"safety", "dataset", "cifar10_utils", "mlp_pytorch", "training"},
    "questions": {"safety", "dataset", "cifar10_utils", "modules", "mlp_numpy", "mlp_pytorch",
                  "training", "questions"},
    "benchmarks": {"safety", "dataset", "cifar10_utils", "mlp_pytorch", "training"},
    "experiments": {"safety", "dataset", "cifar10_utils", "modules", "mlp_numpy", "mlp_pytorch",
                    "training", "train_mlp_numpy", "train_mlp_pytorch", "questions",
                    "experiments"},
    "unittests": {"modules", "mlp_numpy"},
}
MAX_FILE_LINES, MAX_FUNCTION_LINES = 400, 50


def source_files():
    """The project's own Python files (not the tests), relative to the repository."""
    found = []
    for folder, subfolders, files in os.walk(REPO):
        subfolders[:] = [name for name in subfolders
                         if not name.startswith((".", "__")) and name not in ("data", "tests")]
        found += [os.path.relpath(os.path.join(folder, name), REPO) for name in files
                  if name.endswith(".py")]
    return sorted(found)


def part_of(path):
    """'training' for training/run.py, 'modules' for modules.py."""
    first = path.split(os.sep)[0]
    return first[:-len(".py")] if first.endswith(".py") else first


def imported_parts(path):
    with open(os.path.join(REPO, path)) as f:
        tree = ast.parse(f.read())
    names = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
             for alias in node.names]
    names += [node.module for node in ast.walk(tree)
              if isinstance(node, ast.ImportFrom) and node.module and node.level == 0]
    return {name.split(".")[0] for name in names} & set(MAY_IMPORT)


def test_the_top_level_is_the_assignment():
    top = {name for name in os.listdir(REPO) if name.endswith(".py")}
    assert top == COURSE_FILES


def test_every_part_of_the_code_is_declared_here():
    assert {part_of(path) for path in source_files()} == set(MAY_IMPORT)


@pytest.mark.parametrize("path", source_files())
def test_imports_run_down_the_flow(path):
    assert imported_parts(path) - {part_of(path)} <= MAY_IMPORT[part_of(path)]


@pytest.mark.parametrize("path", source_files())
def test_files_and_functions_are_short_enough_to_read(path):
    with open(os.path.join(REPO, path)) as f:
        text = f.read()
    assert text.count("\n") <= MAX_FILE_LINES
    too_long = [f"{node.name}: {node.end_lineno - node.lineno + 1} lines"
                for node in ast.walk(ast.parse(text))
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not too_long


TORCH_FREE_RUN = """
import sys
import train_mlp_numpy
assert "torch" not in sys.modules, "imported by: import train_mlp_numpy"
train_mlp_numpy.train([8], 0.1, 16, 1, 0, sys.argv[1], validation_size=30, results_dir=sys.argv[2],
                      normalize="zca", augment="crop+flip+cutout", mixup=0.4, tta="flip+shift")
assert "torch" not in sys.modules, "imported by a NumPy training run"
"""


def test_the_numpy_trainer_never_imports_torch(cifar_dir, tmp_path):
    """The NumPy path (data, preprocessing, augmentation, mixup, test-time views) works on NumPy
    arrays alone; torch, seconds to import, is left to the code that is given a tensor."""
    done = subprocess.run([sys.executable, "-c", TORCH_FREE_RUN, str(cifar_dir[0]),
                           str(tmp_path / "results")], capture_output=True, text=True, cwd=REPO,
                          timeout=120)
    assert done.returncode == 0, done.stderr


def test_no_test_file_imports_another():
    """Each test file stands alone; what several share lives in helpers.py or conftest.py."""
    tests = os.path.join(REPO, "tests")
    modules = {name[:-3] for name in os.listdir(tests) if name.startswith("test_")}
    for name in sorted(modules):
        tree = ast.parse(open(os.path.join(tests, name + ".py")).read())
        imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                    if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.module}
        assert not imported & modules, name
