"""The README and docs/ stay true to the repository: every relative link leads to a file and every
#anchor to a heading (by GitHub's rule), every file, command, path and Python name they give in
code exists, the flag table and the README's results table are the generated ones, and the README
stays a front door, with the course's commands near its top and the test command CI runs."""
import ast
import builtins
import functools
import glob
import importlib
import importlib.util
import json
import os
import re

import pytest

from experiments import budget, readme_table
from experiments.runner import array_commands
from experiments.sections.words import ORDINAL_WORDS, number_word
from experiments.sets import SETS
from experiments.store import Results, flags_of, validation_accuracy
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


# --- names in inline code: paths, Python names, tests ---
NAMED_PAGES = [*PAGES, "derivations.md"]
# folders the pages name that are not the repository's: each made by a run or by the user
NOT_IN_THE_REPOSITORY = {
    "data/": "the default --data_dir, which the first run fills",
    "cifar-10-batches-py/": "the dataset's own folder, inside a --data_dir",
    "nest/": "a folder a refused --data_dir does not leave behind",
}
COMMANDS = ("python", "pip", "bash", "source", "module", "ulimit", "wget", "scontrol", "sinfo")
FILE_TYPES = {"py", "json", "png", "npz", "pt", "md", "txt", "toml", "gz", "meta", "job", "sh"}


def inline_code(page):
    return re.findall(r"`([^`\n]+)`", prose(read(page)))


def python_files():
    for folder, subfolders, files in os.walk(REPO):
        subfolders[:] = [name for name in subfolders
                         if not name.startswith((".", "__")) and name not in ("data", "results")]
        yield from (os.path.join(folder, name) for name in files if name.endswith(".py")
                    and os.path.join(folder, name) != os.path.abspath(__file__))  # its examples


@functools.lru_cache(maxsize=None)
def project_names():
    """(every name the project's Python source defines, uses or spells as an identifier in a
    string, with the modules' and packages' names; each class's members, by class name)"""
    names, members = set(dir(builtins)), {}
    for path in python_files():
        names |= {os.path.basename(os.path.dirname(path)), os.path.basename(path)[:-3]}
        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
            if isinstance(node, ast.ClassDef):
                members.setdefault(node.name, set()).update(
                    part.name for part in node.body if hasattr(part, "name"))
            names.update(value for key, value in vars(node).items()
                         if key in ("name", "id", "attr", "arg") and isinstance(value, str))
            if isinstance(node, ast.Constant) and str(node.value).isidentifier():
                names.add(node.value)
            if isinstance(node, ast.alias):
                names.update(node.name.split("."))
    return names, members


def shell_names():
    """The variables and markers of the job files and CI's script."""
    paths = [*glob.glob(os.path.join(REPO, "slurm", "*")), os.path.join(REPO, ".ci", "run")]
    return set(re.findall(r"\b[A-Z][A-Z0-9_]+\b", "".join(read(path) for path in paths)))


def code_names(span):
    """The Python names an inline code span gives: a call's function and keywords, a keyword
    given a value, a dotted name, a CamelCase, snake_case or UPPER_CASE name. Flags, commands,
    paths, values and messages give none."""
    if span.startswith(("-", "(", '"', "'")) or span.split()[0] in COMMANDS:
        return []
    if re.fullmatch(r"[A-Za-z_][\w.]*\(.*\)(\[\w+\])?|\w+=.*", span):
        return re.findall(r"([A-Za-z_][\w.]*)\(", span) + re.findall(r"(\w+)=", span)
    dotted = re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+", span)
    if dotted and span.rsplit(".", 1)[1] not in FILE_TYPES:
        return [span]
    camel = re.fullmatch(r"[A-Z]\w*", span) and re.search(r"[a-z]", span) and \
        len(re.findall(r"[A-Z]", span)) > 1
    snake_or_upper = re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)+|[A-Z][A-Z0-9_]+", span)
    return [span] if camel or snake_or_upper else []


def exists_in_code(name):
    """A dotted name of a project module's attribute by import (modules.LinearModule.backward),
    Class.member by the class's body, any other name somewhere in the project's source."""
    names, members = project_names()
    first, *rest = name.split(".")
    if rest and importlib.util.find_spec(first) and first in names and \
            os.path.dirname(importlib.util.find_spec(first).origin).startswith(REPO):
        value = importlib.import_module(first)
        for part in rest:
            if not hasattr(value, part):
                return False
            value = getattr(value, part)
        return True
    if rest and first in members:
        return rest[0] in members[first]
    return all(part in names for part in name.split(".")) or name in shell_names()


@pytest.mark.parametrize("page", NAMED_PAGES)
def test_every_path_named_in_inline_code_exists(page):
    """A path up to its first placeholder (<run name>, an UPPER_CASE one); a test after :: in the
    file before it."""
    for span in inline_code(page):
        for path in re.findall(r"(?<![\w./~$-])((?:[\w.-]+/)+[\w.-]*)", span):
            if path.split("/")[0].isupper() or "..." in path or path in NOT_IN_THE_REPOSITORY:
                continue
            assert path in WRITTEN_BY_COMMANDS or os.path.exists(os.path.join(REPO, path)), \
                f"{page}: no {path}"
        for path, test in re.findall(r"([\w/]+\.py)::(\w+)", span):
            assert f"def {test}(" in read(path), f"{page}: no {test} in {path}"


@pytest.mark.parametrize("page", NAMED_PAGES)
def test_every_python_name_in_inline_code_exists(page):
    missing = {name for span in inline_code(page) for name in code_names(span)
               if not exists_in_code(name)}
    assert not missing, f"{page} names what the code does not have: {sorted(missing)}"


def test_names_are_told_from_flags_commands_and_values():
    assert code_names("cifar10_utils.get_cifar10(data_dir, validation_size=5000)") == [
        "cifar10_utils.get_cifar10", "validation_size"]
    assert code_names("lr=np.float32(0.1)") == ["np.float32", "lr"]
    for name in ("TrainingRun", "modules.LinearModule.backward", "kept_val_accuracy", "PRESETS"):
        assert code_names(name) == [name]
    for other in ("--lr 0", "python -m experiments bn", "metrics.json", "0.1", "bn-test-time",
                  "train", "(images (B, 3, 32, 32), labels)", "layers.<i>.…"):
        assert code_names(other) == [], other
    assert not exists_in_code("modules.LinearModule.forwards")
    assert not exists_in_code("CrossEntropyModule.logit_grad")
    assert not exists_in_code("TrainRun")


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


def test_the_step_costs_experiments_md_states_are_the_saved_ones():
    """Each optimizer step's cost against a batch's pass, as results/step-cost.json holds it."""
    with open(os.path.join(REPO, "results", "step-cost.json")) as f:
        seconds = json.load(f)["seconds"]
    batch = seconds.pop("forward and backward of one batch")
    stated = re.findall(r"(\d+\.\d\d)x (?:the forward|for AdamW)",
                        prose(read("docs/experiments.md")))
    assert sorted(f"{step / batch:.2f}" for step in seconds.values()) == sorted(stated)


@pytest.mark.parametrize("page", ["README.md", "docs/experiments.md"])
def test_the_spread_of_the_course_runs_times_a_page_states_is_the_saved_one(page):
    """How noisy these VMs are, in the numbers of results/benchmark.json's NumPy row."""
    with open(os.path.join(REPO, "results", "benchmark.json")) as f:
        row = next(row for row in json.load(f)["runs"] if row["benchmark"] == "numpy")
    walls = row["wall_s_all"]
    text = " ".join(read(page).split())
    assert (f"{number_word(len(walls))} runs of the course's 10-epoch NumPy run took "
            f"{min(walls):.1f} to {max(walls):.1f} s, `results/benchmark.json`") in text


def test_the_presets_minutes_experiments_md_states_are_the_saved_ones():
    """--preset best's and --preset fast's minutes against their budgets, and the NumPy trainer's
    time against PyTorch's, as results/presets/summary.json holds them and the budgets of the
    machine that ran them."""
    results = Results()
    runs = {entry["key"]: entry["metrics"] for entry in results.load("presets")["runs"]}
    text = " ".join(prose(read("docs/experiments.md")).split())
    for preset in ("best", "fast"):
        limit = budget.preset_budget(preset, budget.factor_here(results))
        minutes = runs[preset]["wall_time_s"] / 60
        over = minutes / limit - 1
        assert (f"`--preset {preset}` took {minutes:.2f} minutes, " + (
            f"{100 * over:.1f} % past its budget of {limit:.2f} there" if over > 0 else
            f"{-100 * over:.1f} % less than its budget of {limit:.2f} there")) in text
    ratio = runs["best-numpy"]["wall_time_s"] / runs["best"]["wall_time_s"]
    assert f"in {ratio:.2f} times its time" in text


def test_the_earlier_minutes_of_the_presets_trainings_experiments_md_states_are_the_saved_ones():
    """Each search row that trained a preset's recipe, its minutes and its budget then, and the
    span of --preset best's minutes and budgets over those rows and the presets set, as the
    saved summaries hold them."""
    results = Results()
    text = " ".join(prose(read("docs/experiments.md")).split())
    presets = {entry["key"]: entry for entry in results.load("presets")["runs"]}
    for preset in ("best", "fast"):
        rows = [(entry["metrics"]["wall_time_s"] / 60, entry["budget_minutes"], name)
                for name, experiment_set in SETS.items()
                if experiment_set.budget_preset == preset and results.has(name)
                for entry in results.load(name)["runs"]
                if flags_of(entry) == flags_of(presets[preset])]
        assert rows, f"no search row trained --preset {preset}'s recipe"
        for minutes, limit, name in rows:
            side = "under" if minutes <= limit else "past"
            assert (f"{minutes:.2f} minutes as a row of `{name}`, {side} its budget of "
                    f"{limit:.2f}") in text
        if preset == "best":
            rows.append((presets[preset]["metrics"]["wall_time_s"] / 60,
                         budget.preset_budget(preset, budget.factor_here(results)), "presets"))
            minutes, limits, _ = zip(*rows)
            assert (f"took from {min(minutes):.2f} to {max(minutes):.2f} minutes on machines of "
                    f"one kind, against budgets from {min(limits):.2f} to "
                    f"{max(limits):.2f}") in text


def test_the_presets_accuracies_experiments_md_states_are_the_saved_ones():
    """Each preset's test accuracy, and NumPy's difference from PyTorch, as
    results/presets/summary.json holds them."""
    runs = {entry["key"]: 100 * entry["metrics"]["test_accuracy"]
            for entry in Results().load("presets")["runs"]}
    text = " ".join(prose(read("docs/experiments.md")).split())
    assert f"`--preset best` reaches **{runs['best']:.2f} %**" in text
    assert f"`--preset fast` **{runs['fast']:.2f} %**" in text
    assert (f"trains `--preset best` to {runs['best-numpy']:.2f} %, "
            f"{runs['best-numpy'] - runs['best']:+.2f} points from PyTorch") in text


@pytest.mark.parametrize("page", ["docs/experiments.md", "docs/cluster.md",
                                  "slurm/experiments.job"])
def test_each_page_that_lists_the_greedy_searches_names_exactly_the_declared_ones(page):
    """A stage added to experiments/sets.py, or one removed, fails here until each list of the
    greedy searches says so."""
    with open(os.path.join(REPO, page)) as f:
        named = set(re.findall(r"\bsearch(?:-[a-z]+)+", f.read()))
    assert named == {name for name, one in SETS.items() if one.greedy and name != "search"}


def test_the_count_of_sets_that_cannot_be_arrays_is_the_declared_one():
    refused = 0
    for one in SETS.values():
        try:
            array_commands(one, "data", Results())
        except UserError:
            refused += 1
    with open(os.path.join(REPO, "docs", "cluster.md")) as f:
        text = " ".join(f.read().split())
    assert f"`--list` refuses these {number_word(refused)}, saying so" in text


def test_the_count_of_stages_that_build_the_presets_is_the_declared_one():
    held = sum(1 for one in SETS.values() if one.greedy and one.budget_preset)
    text = " ".join(read("docs/experiments.md").split())
    assert f"The last {number_word(held)} build the presets" in text


def test_the_last_budget_reference_minutes_are_the_saved_ones():
    entry = Results().load("budget-reference")["runs"][0]
    text = " ".join(read("docs/experiments.md").split())
    said = re.search(r"(\d+\.\d) when[^.]*\(the last `budget-reference` run\)", text)
    assert said and said.group(1) == f"{entry['metrics']['wall_time_s'] / 60:.1f}"


def test_the_presets_commands_on_the_experiments_page_give_the_saved_accuracies():
    runs = {entry["key"]: entry["metrics"] for entry in Results().load("presets")["runs"]}
    text = read("docs/experiments.md")
    for key, command in [("best", "train_mlp_pytorch.py --preset best"),
                         ("fast", "train_mlp_pytorch.py --preset fast"),
                         ("best-numpy", "train_mlp_numpy.py --preset best")]:
        said = re.search(re.escape(command) + r" +#[^\n]*?(\d+\.\d\d) % test", text)
        assert said and said.group(1) == f"{100 * runs[key]['test_accuracy']:.2f}", command




def stage_of(experiment_set):
    """A greedy set's stage, counted from 1, as its title names it (the first stage's does not)."""
    named = re.search(r"\b(%s) stage\b" % "|".join(ORDINAL_WORDS), experiment_set.title)
    return ORDINAL_WORDS.index(named.group(1)) + 1 if named else 1


def saved_numbers(names, results):
    """What the story may state of the greedy sets named: each row's validation, test,
    last-epoch training and validation accuracy, its minutes and its budget."""
    saved = set()
    for name in names:
        for entry in results.load(name)["runs"]:
            metrics = entry["metrics"]
            saved |= {f"{100 * validation_accuracy(metrics):.2f}",
                      f"{100 * metrics['test_accuracy']:.2f}",
                      f"{100 * metrics['train_accuracy'][-1]:.1f}",
                      f"{100 * metrics['val_accuracy'][-1]:.1f}",
                      f"{metrics['wall_time_s'] / 60:.1f}"}
            if entry.get("budget_minutes"):
                saved.add(f"{entry['budget_minutes']:.1f}")
    return saved


def story_by_stage(story):
    """(stages, text) pieces of the story: each sentence part that begins "The <ordinal> stage"
    (not "the <ordinal> stage's", which points back) tells that stage, up to the next one; what
    comes before the first tells the stages before that one, in order."""
    pieces = re.split(r"\b[Tt]he (%s) stage\b(?!'s)" % "|".join(ORDINAL_WORDS), story)
    first = ORDINAL_WORDS.index(pieces[1]) + 1 if len(pieces) > 1 else len(ORDINAL_WORDS) + 1
    told = [(set(range(1, first)), pieces[0])]
    told += [({ORDINAL_WORDS.index(ordinal) + 1}, text)
             for ordinal, text in zip(pieces[1::2], pieces[2::2])]
    return told


def test_the_story_is_cut_at_each_stage_it_tells_not_at_one_it_points_back_to():
    story = ("At first 70.00. The third stage kept 71.00; the sixth stage's model gave 72.00, "
             "and the fourth stage 73.00.")
    assert [(stages, re.findall(r"\d\d\.\d\d", text)) for stages, text in
            story_by_stage(story)] == [({1, 2}, ["70.00"]), ({3}, ["71.00", "72.00"]),
                                       ({4}, ["73.00"])]


def test_every_number_in_the_story_of_the_search_is_one_its_stage_saved():
    """The experiments page's account of the stages, from "The presets come from" to its link to
    the report: each accuracy and minute it states (two digits before the point) is one that the
    stage it is telling saved, for either preset."""
    results = Results()
    stages = {}
    for name, one in SETS.items():
        if one.greedy:
            stages.setdefault(stage_of(one), []).append(name)
    text = read("docs/experiments.md")
    story = " ".join(text[text.index("The presets come from"):text.index("with curves, is in")]
                     .split())
    told = story_by_stage(story)
    assert len(told) > len(stages) // 2, "the story names too few of the stages"
    unsaved = []
    for numbers_of, piece in told:
        saved = saved_numbers([name for stage in numbers_of for name in stages.get(stage, [])],
                              results)
        unsaved += [(sorted(numbers_of), number) for number in re.findall(r"\b\d\d\.\d+\b", piece)
                    if number not in saved]
    assert told[0][1].strip() and not unsaved, f"(stages, number) no such stage saved: {unsaved}"


def test_the_refusal_shown_for_a_bad_flag_is_the_one_the_trainer_prints(capsys):
    """docs/when-things-go-wrong.md shows what `--lr 0` prints; the trainer must print that."""
    import train_mlp_numpy
    with pytest.raises(SystemExit) as stopped:
        train_mlp_numpy.parse_args(["--lr", "0"])
    printed = capsys.readouterr().err.strip()
    assert stopped.value.code == 2 and printed.startswith("error: argument --lr")
    assert f"```\n{printed}\n```" in read("docs/when-things-go-wrong.md")


def test_the_resume_example_counts_the_epochs_of_preset_best():
    text = read("docs/cluster.md")
    epochs = options.PRESETS["best"]["epochs"]
    said = re.findall(r"--preset best +# stopped in epoch \d+ of (\d+)\n"
                      r".*# epochs \d+ to (\d+)", text)
    assert said == [(str(epochs), str(epochs))]


@pytest.mark.parametrize("seconds, shown", [([59.94], "59.9 s"), ([60.0], "1.00 min"),
                                            ([707.86], "11.80 min"), ([6.3, 25.4], "6.3–25.4 s")])
def test_the_results_table_shows_a_minute_or_more_in_minutes(seconds, shown):
    assert readme_table.wall_time(seconds) == shown
