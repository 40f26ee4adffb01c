"""Each trainer reads as the course's template does: its docstring and imports, then the
assignment's helpers (accuracy, evaluate_model), train() within its first 100 lines, and the
command line; no file format or checkpoint is defined in it (they live in training/)."""
import ast
import os

import pytest
from helpers import REPO

TEMPLATE = ["accuracy", "evaluate_model", "train", "parse_args"]
FILE_CALLS = {"save", "savez", "load", "open"}  # torch.save, np.savez, np.load, open, ...


@pytest.mark.parametrize("script", ["train_mlp_numpy.py", "train_mlp_pytorch.py"])
def test_the_trainer_is_the_course_template_with_the_loop_first(script):
    with open(os.path.join(REPO, script)) as f:
        tree = ast.parse(f.read())
    definitions = [node for node in tree.body
                   if isinstance(node, (ast.FunctionDef, ast.ClassDef))]
    assert [node.name for node in definitions] == TEMPLATE
    train = next(node for node in definitions if node.name == "train")
    assert train.lineno <= 100, f"train() starts at line {train.lineno}"
    calls = {node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
             for node in ast.walk(tree) if isinstance(node, ast.Call)
             and isinstance(node.func, (ast.Attribute, ast.Name))}
    assert not calls & FILE_CALLS, f"{script} reads or writes files itself: {calls & FILE_CALLS}"
