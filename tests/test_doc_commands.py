"""The README and docs/: every ``attpc-classify`` command they print is one the CLI takes,
and every relative link they make resolves.

Each command of a fenced code block is parsed by the real sub-command parser, and the
settings it names (``--config`` presets, ``--set`` and ``key=value`` overrides) are
resolved as ``simulate``, ``preprocess`` and ``train`` resolve them, so a renamed flag,
option or preset that the docs still print fails here. Nothing is run.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from attpc_classify.cli import COMMANDS, parse_command
from attpc_classify.config import load_config

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: a block after these words prints the commands of code since removed (the docs name
#: the commit), e.g. a feature set measured and not kept
HISTORICAL = re.compile(r"at\s+that\s+commit|at\s+commit\s+[0-9a-f]{7}", re.I)


def doc_commands(path: Path) -> Iterator[str]:
    """The ``attpc-classify`` command lines of ``path``'s code blocks, variables expanded."""
    text = path.read_text()
    for match in re.finditer(r"```[a-z]*\n(.*?)```", text, re.S):
        if HISTORICAL.search(text[max(0, match.start() - 400) : match.start()]):
            continue
        block = re.sub(r"\\\n\s*", " ", match.group(1))  # continuation lines
        env = dict(re.findall(r'^(\w+)="([^"]*)"\s*$', block, re.M))
        for line in block.splitlines():
            command = line.strip().removeprefix("$ ")
            if not command.startswith("attpc-classify "):
                continue
            command = re.split(r"\s(?:&&|\||;|>|2>)\s", command)[0]  # the first command
            for name, value in env.items():
                command = command.replace(f"${name}", value)
            # "..." elides arguments; "[key=value]" marks optional ones: not a command line
            if "..." in command or re.search(r"\s\[[\w.]+=", command):
                continue
            yield command


def parse(argv: list[str]) -> argparse.Namespace:
    """``argv`` parsed as `main` parses it; argparse's message as an AssertionError."""
    assert argv[0] in COMMANDS, f"no command {argv[0]!r}"
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            return parse_command(argv)
    except SystemExit:
        raise AssertionError(stderr.getvalue().strip().splitlines()[-1]) from None


def resolve_settings(argv: list[str], args: argparse.Namespace) -> None:
    """Load the config a command line names, as its sub-command does before any work."""
    from attpc_classify.commands import preprocess, train
    from data_prep.simulate import SimConfig

    if any("$" in a for a in argv):
        return  # a shell variable stands for a path or value the docs leave open
    if argv[0] == "train" and args.resume is None:
        train.resolve_config(args)
    elif argv[0] == "preprocess":
        preprocess.image_config(args)
    elif argv[0] == "simulate":
        load_config(SimConfig, args.config, args.overrides)


CASES = [
    pytest.param(command, id=f"{path.name}:{i}")
    for path in DOCS
    for i, command in enumerate(doc_commands(path))
]


def test_the_docs_print_commands() -> None:
    """The extraction finds the docs' commands (a broken pattern would pass vacuously)."""
    names = {shlex.split(c, comments=True)[1] for c in (p.values[0] for p in CASES)}
    assert len(CASES) > 200
    assert {"simulate", "preprocess", "train", "evaluate", "classify", "adapt"} <= names


@pytest.mark.parametrize("command", CASES)
def test_doc_command_is_accepted(command: str) -> None:
    argv = shlex.split(command, comments=True)[1:]
    args = parse(argv)
    resolve_settings(argv, args)


def test_overrides_may_follow_options() -> None:
    """`main` parses options and key=value overrides in any order, as the docs write them
    (argparse alone takes one run of positionals and refuses a second)."""
    args = parse(["train", "--config", "gbt", "model.max_leaf_nodes=31", "--out", "r",
                  "optim.balance=weights", "--quiet"])  # fmt: skip
    assert args.overrides == ["model.max_leaf_nodes=31", "optim.balance=weights"]
    assert args.out == "r" and args.quiet and args.command == "train"
    args = parse(["preprocess", "a.h5", "--out", "x.h5", "b.h5"])
    assert args.inputs == ["a.h5", "b.h5"]


def test_a_wrong_command_fails() -> None:
    """The check does fail: an unknown flag, an unknown override key, an unknown preset."""
    with pytest.raises(AssertionError, match="unrecognized arguments"):
        parse(["evaluate", "runs/x", "--data", "t.h5", "--no-such-flag"])
    argv = ["train", "--config", "configs/train/gbt.yaml", "model.no_such_key=1"]
    with pytest.raises(Exception, match="no_such_key"):
        resolve_settings(argv, parse(argv))
    argv = ["simulate", "--config", "no_such_preset", "--events", "1", "--out", "x"]
    with pytest.raises(Exception, match="no_such_preset"):
        resolve_settings(argv, parse(argv))


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings (lower case, punctuation dropped,
    spaces to hyphens)."""
    heads = re.findall(r"^#+ (.+)$", re.sub(r"```.*?```", "", path.read_text(), flags=re.S), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


def test_doc_links_resolve() -> None:
    """Every relative link of the README and docs/ names a file that exists, and every
    #anchor a heading of its file."""
    broken = []
    for path in DOCS:
        for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)", path.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            file = (path.parent / target) if target else path
            if not file.exists():
                broken.append(f"{path.name}: {target}")
            elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
                broken.append(f"{path.name}: {target}#{anchor}")
    assert not broken, broken


def _titles(path: Path) -> list[str]:
    """A Markdown file's headings and bold paragraph titles (``**Title** ...`` opening a
    paragraph or a list item): what a ``docs/x.md, "Title"`` reference may name."""
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    heads = re.findall(r"^#+ (.+)$", text, re.M)
    bold = re.findall(r"^(?:- )?\*\*(.+?)\*\*", text, re.M)
    return [re.sub(r"\s+", " ", t).strip() for t in heads + bold]


def test_section_references_name_a_section() -> None:
    """``docs/x.md, "Section"`` in the code, configs and docs names a heading (or a bold
    paragraph title) of that file, so a renamed section does not leave readers lost."""
    tracked = [p for p in ROOT.rglob("*") if p.suffix in {".md", ".py", ".yaml", ".sh"}]
    tracked = [p for p in tracked if not any(part.startswith(".") for part in p.parts)]
    titles = {p: _titles(p) for p in DOCS}
    broken, n = [], 0
    for path in tracked:
        if "site-packages" in path.parts or "egg-info" in str(path):
            continue
        text = re.sub(r"\s*\n\s*(?:#\s*)?", " ", path.read_text(errors="replace"))
        for doc, section in re.findall(r'(docs/[\w-]+\.md|README),?\s+"([^"]{3,120})"', text):
            target = ROOT / ("README.md" if doc == "README" else doc)
            if target not in titles:
                continue
            n += 1
            s = section.rstrip(".,;:")
            if not any(s in t or t.startswith(s) for t in titles[target]):
                broken.append(f"{path.relative_to(ROOT)}: {doc}, {section!r}")
    assert n > 100  # the pattern finds the references
    assert not broken, broken
