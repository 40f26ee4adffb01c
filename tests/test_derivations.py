"""derivations.md stays true to the repository: every test, file and link it points to exists,
and its math is written the way GitHub renders it."""
import glob
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCUMENT = os.path.join(ROOT, "derivations.md")
# the commands the document's math uses, each one MathJax (GitHub's renderer) knows
KNOWN_COMMANDS = set("""frac partial sum prod int delta top mathbf mathbb mathrm lVert rVert
lvert rvert left right sqrt hat circ oslash qquad quad text log exp cos sin ln pi varphi theta
lambda mu sigma gamma beta alpha epsilon varepsilon eta xi ldots neq approx propto lceil rceil
nabla in ast times cdot""".split())


def text():
    with open(DOCUMENT, encoding="utf-8") as f:
        return f.read()


def math_spans(document):
    """(display blocks, inline spans) as GitHub finds them: ```math fences, and $...$ within a
    line outside them and outside code."""
    blocks = re.findall(r"```math\n(.*?)```", document, flags=re.S)
    prose = re.sub(r"```.*?```", "", document, flags=re.S)
    prose = re.sub(r"`[^`\n]*`", "", prose)
    return blocks, re.findall(r"\$([^$\n]+)\$", prose)


def github_anchor(heading):
    """The id GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path):
    with open(path, encoding="utf-8") as f:
        return {github_anchor(line.lstrip("#")) for line in f if line.startswith("#")}


def defined_tests():
    names = set()
    for path in [os.path.join(ROOT, "unittests.py"),
                 *glob.glob(os.path.join(ROOT, "tests", "test_*.py"))]:
        with open(path, encoding="utf-8") as f:
            names |= set(re.findall(r"def (test_\w+)", f.read()))
    return names


def test_every_test_named_exists():
    """Test functions; test files (test_*.py) are checked with every other file named."""
    named = set(re.findall(r"\b(test_\w+)\b(?!\.py)", text()))
    assert named and named <= defined_tests(), named - defined_tests()


def test_every_file_named_exists():
    files = set(re.findall(r"`((?:\w+/)*\w+\.py)", text()))
    assert files and all(os.path.exists(os.path.join(ROOT, name)) for name in files)


def test_every_link_leads_to_a_heading():
    """Links into this document and into results/README.md, by GitHub's anchor rule; the report's
    headings come from report.SECTIONS, so a renamed section breaks this test."""
    from experiments import report
    own = anchors(DOCUMENT)
    sections = {github_anchor(title) for title, _ in report.SECTIONS.values()}
    links = re.findall(r"\]\(([^)]*)#([^)]+)\)", text())
    assert links
    for target, anchor in links:
        assert anchor in (own if target == "" else sections), f"{target}#{anchor}"


@pytest.mark.parametrize("span", [*math_spans(text())[0], *math_spans(text())[1]])
def test_math_is_balanced_and_uses_known_commands(span):
    depth = 0
    for char in re.sub(r"\\[{}]", "", span):
        depth += {"{": 1, "}": -1}.get(char, 0)
        assert depth >= 0, span
    assert depth == 0, span
    assert span.count(r"\left") == span.count(r"\right"), span
    commands = set(re.findall(r"\\([A-Za-z]+)", span))
    assert commands <= KNOWN_COMMANDS, commands - KNOWN_COMMANDS


@pytest.mark.parametrize("span", math_spans(text())[1])
def test_inline_math_survives_markdown(span):
    """In $...$ GitHub's markdown may read a backslash before punctuation (\\, \\{) or a * as its
    own, so inline math has none; it also needs no space just inside the dollars."""
    assert not re.search(r"\\[^A-Za-z]", span) and "*" not in span, span
    assert span == span.strip(), span
