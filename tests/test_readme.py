"""The README's reference parts against the code they describe, so that they cannot drift apart unseen: the CLI
synopsis names every subcommand and flag, the presets table every preset, and the Python API example returns what
its comments say."""

import argparse
import ast
import re
from pathlib import Path

from kanbench.cli import build_parser
from kanbench.harness.presets import PRESETS

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def section(title: str) -> str:
    """The README's text from the heading ``title`` to the next heading of any level."""
    start = README.index(f"\n{title}\n")
    end = README.find("\n#", start + len(title) + 2)
    return README[start:end if end >= 0 else None]


def code_blocks(text: str, language: str = "") -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def synopsis_entries() -> dict[str, str]:
    """The CLI synopsis (the first code block under "## `kanbench run`"): each subcommand's text, its indented
    continuation lines included."""
    entries: dict[str, str] = {}
    name = None
    for line in code_blocks(section("## `kanbench run`"))[0].splitlines():
        if line.startswith("kanbench "):
            name = line.split()[1]
            entries[name] = line
        elif line.startswith(" ") and name is not None:
            entries[name] += "\n" + line
    return entries


def subcommands() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_the_cli_synopsis_names_every_subcommand_and_every_flag():
    entries = synopsis_entries()
    parsers = subcommands()
    top_level = {name for name in entries if name.startswith("--")}  # `kanbench --version`
    assert top_level == {s for a in build_parser()._actions for s in a.option_strings if s.startswith("--")} - {
        "--help"}
    assert set(entries) - top_level == set(parsers)
    for name, parser in parsers.items():
        flags = {s for a in parser._actions for s in a.option_strings if s.startswith("--") and s != "--help"}
        documented = set(re.findall(r"--[a-z][a-z0-9-]*", entries[name]))
        assert documented == flags, (name, sorted(flags - documented), sorted(documented - flags))


def test_the_presets_table_has_a_row_for_every_preset():
    rows = re.findall(r"^\| `([a-z0-9-]+)` \| ", section("## `kanbench run`"), flags=re.M)
    assert sorted(rows) == sorted(PRESETS)


def test_the_python_api_example_returns_what_its_comments_say():
    (example,) = code_blocks(section("## Python API"), "python")
    namespace: dict = {}
    exec(example, namespace)  # the whole example runs as written
    checked = 0
    for line in example.splitlines():
        code, _, comment = line.partition("  #")
        if comment.strip().startswith("["):  # a comment that is a literal result
            assert eval(code.strip(), namespace) == ast.literal_eval(comment.strip()), line
            checked += 1
    assert checked >= 1
