"""What many test files share: the repository's root, running a script as a user would, the
one-line error every refusal ends in, and a copy of the repository to run from elsewhere."""
import os
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_script(script, *flags, timeout=120):
    """Run a trainer as a user would; returns (exit code, stdout, stderr)."""
    result = subprocess.run([sys.executable, os.path.join(REPO, script), *map(str, flags)],
                            capture_output=True, text=True, timeout=timeout, cwd=REPO)
    return result.returncode, result.stdout, result.stderr


def assert_one_clear_line(stderr, *fragments):
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), stderr
    for fragment in fragments:
        assert fragment in last, (fragment, last)


def copy_of_the_repository(tmp_path, with_results=False):
    copy = tmp_path / "repo"
    copy.mkdir()
    for name in os.listdir(REPO):
        if name.endswith(".py"):
            shutil.copy(os.path.join(REPO, name), copy)
        elif os.path.isfile(os.path.join(REPO, name, "__init__.py")):
            shutil.copytree(os.path.join(REPO, name), copy / name,
                            ignore=shutil.ignore_patterns("__pycache__"))
    if with_results:
        shutil.copytree(os.path.join(REPO, "results"), copy / "results")
    return copy


def files_of(folder):
    return {str(path.relative_to(folder)): path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file()}
