"""The README and docs/ stay true to the repository: every relative link leads to a file and every
#anchor to a heading (by GitHub's rule), every file and command they name exists, the flag table
and the README's results table are the generated ones, and the README stays a front door, with
the course's commands near its top and the test command CI runs."""
import glob
import importlib.util
import os
import re

import pytest

from experiments import readme_table
from experiments.store import Results
from helpers import REPO
from safety.errors import UserError
from training import options

PAGES = ["README.md", *sorted(os.path.relpath(path, REPO)
                              for path in glob.glob(os.path.join(REPO, "docs", "*.md")))]
COURSE_COMMANDS = ["python train_mlp_numpy.py", "python train_mlp_pytorch.py",
                   "python -m pytest unittests.py"]
# files the pages name that a command writes, not the repository
WRITTEN_BY_COMMANDS = {"results/benchmark-cuda.json"}


def read(page):
    with open(os.path.join(REPO, page), encoding="utf-8") as f:
        return f.read()


def prose(text):
    """The text outside fenced code blocks, where links and headings are."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def fenced_blocks(text):
    return re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M)


def code_spans(text):
    """Fenced blocks and inline code, where files and commands are named."""
    return [*fenced_blocks(text), *re.findall(r"`([^`\n]+)`", prose(text))]


def github_anchor(heading):
    """The id GitHub gives a heading: lower case, punctuation (backticks too) dropped, spaces to
    hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page):
    """The ids of a page's headings; a repeated heading gets -1, -2, ... as on GitHub."""
    seen, ids = {}, set()
    for line in prose(read(page)).splitlines():
        if re.match(r"#{1,6} ", line):
            anchor = github_anchor(line.lstrip("#"))
            ids.add(f"{anchor}-{seen[anchor]}" if anchor in seen else anchor)
            seen[anchor] = seen.get(anchor, 0) + 1
    return ids


def relative_links(page):
    """(target path from the repository's root, anchor or '') of each link that leaves no site."""
    links = []
    for target in re.findall(r"\]\(([^)\s]+)\)", prose(read(page))):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        resolved = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
        links.append((resolved, anchor))
    return links


@pytest.mark.parametrize("page", PAGES)
def test_every_link_leads_to_a_file_and_every_anchor_to_a_heading(page):
    links = relative_links(page)
    assert links, f"{page} links nowhere"
    for target, anchor in links:
        assert os.path.exists(os.path.join(REPO, target)), f"{page}: no file {target}"
        if anchor:
            assert target.endswith(".md"), f"{page}: #{anchor} into {target}"
            assert anchor in anchors(target), f"{page}: no heading #{anchor} in {target}"


def test_the_anchor_rule_is_githubs():
    assert github_anchor(" One job: `slurm/train.job` ") == "one-job-slurmtrainjob"
    assert github_anchor("Dead ReLU units (2025 Q5d/e)") == "dead-relu-units-2025-q5de"
    assert github_anchor("What a run leaves in `results/`") == "what-a-run-leaves-in-results"


@pytest.mark.parametrize("page", PAGES)
def test_every_file_and_command_named_exists(page):
    for span in code_spans(read(page)):
        for path in re.findall(r"(?<![\w./<-])((?:[\w.-]+/)*[\w-]+\.(?:py|job|sh|md|ini|txt))\b",
                               span):
            if "/" in path and path not in WRITTEN_BY_COMMANDS:
                assert os.path.exists(os.path.join(REPO, path)), f"{page}: no file {path}"
            elif "/" not in path:  # a file of a package, named in its package's row
                assert glob.glob(os.path.join(REPO, "**", path), recursive=True), path
        for script in re.findall(r"\bpython ([\w/]+\.py)", span):
            assert os.path.isfile(os.path.join(REPO, script)), f"{page}: python {script}"
        for module in re.findall(r"\bpython -m ([\w.]+)", span):
            assert importlib.util.find_spec(module), f"{page}: python -m {module}"


def test_the_options_page_is_its_intro_and_then_exactly_the_generated_table():
    intro, table, rest = read("docs/options.md").partition(options.markdown_table() + "\n")
    assert table and rest == "", "run `python -m training.options` and paste its table"
    assert not any(line.startswith("|") for line in intro.splitlines()), "a second table"


def test_the_readme_is_a_front_door():
    lines = read("README.md").splitlines()
    assert len(lines) <= 250, f"{len(lines)} lines: move reference material into docs/"
    top = "\n".join(lines[:80])
    for command in COURSE_COMMANDS:
        assert command in top, f"{command} not in the README's first 80 lines"
    for page in PAGES[1:]:
        assert f"]({page})" in read("README.md"), f"the README does not link {page}"


def test_the_readme_states_once_the_test_command_ci_runs():
    ci_commands = [line for line in read(os.path.join(".ci", "run")).splitlines()
                   if line.startswith("python -m pytest")]
    assert len(ci_commands) == 1, ci_commands
    fenced = "\n".join(fenced_blocks(read("README.md"))).splitlines()
    stated = [line for line in fenced if line.split("#")[0].strip() == ci_commands[0]]
    assert len(stated) == 1, f"the README states `{ci_commands[0]}` {len(stated)} times"


# --- the README's results table ---
def test_the_readme_holds_exactly_the_generated_results_table():
    """Every number, machine and date of the table from the summaries it cites."""
    text = read("README.md")
    assert readme_table.replaced(text, readme_table.markdown_table(Results())) == text, \
        "run `python -m experiments.readme_table`"


def test_the_readme_table_is_written_only_between_its_markers():
    assert readme_table.replaced(f"a\n{readme_table.START}old\n{readme_table.END}b\n", "new\n") \
        == f"a\n{readme_table.START}new\n{readme_table.END}b\n"
    with pytest.raises(UserError, match="markers"):
        readme_table.replaced("a table without markers\n", "new\n")
