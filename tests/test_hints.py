"""Every command the app, the README or the model card tells a user to run parses with the real CLI parser.

Commands are collected from the pages' and entry point's string literals (f-strings with their fields as
placeholders), from README.md and from models/README.md (the model card): inline code spans and fenced code
lines that start with ``python -m dfd`` or ``dfd``. Placeholders are filled with a dummy word: ``<...>``,
f-string fields, an upper-case word such as ``RUN``; ``...`` ("and the rest") is dropped and ``RUN...`` is
``RUN``. A hint that is only a command's name (``python -m dfd ensemble``) names the command: it must exist.
Every ``-m dfd`` in those files must be inside a collected command, so no hint escapes the check.
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from dfd import cli

REPO = Path(__file__).resolve().parent.parent
FIELD = "\x00"  # stands for an f-string field
START = re.compile(r"^(?:python3? -m dfd|dfd)(?:\s|$)")
ENV = re.compile(r"""^(?:[A-Z_][A-Z0-9_]*=(?:'[^']*'|"[^"]*"|\S+)\s+)+""")  # VAR=value before a command


def _py_texts(path: Path) -> list[str]:
    """Every string literal of a Python file, an f-string rendered with FIELD for each field."""
    tree = ast.parse(path.read_text())
    inside = {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values}
    texts = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in inside:
            texts.append(node.value)
        elif isinstance(node, ast.JoinedStr):
            texts.append("".join(v.value if isinstance(v, ast.Constant) else FIELD for v in node.values))
    return texts


def _spans(text: str) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(r"`([^`\n]+)`", text)]


def _markdown_commands(text: str) -> tuple[list[str], str]:
    """(commands, the text outside them) of a markdown file: fenced code lines and inline code spans."""
    commands, rest, fence, pending = [], [], False, ""
    for line in text.splitlines():
        if line.strip().startswith("```"):
            fence = not fence
            continue
        if fence:
            line = pending + line.strip()
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            pending = ""
            if START.match(ENV.sub("", line)):  # the command itself, after any environment it is given
                commands.append(ENV.sub("", line))
                continue
            rest.append(line)
        else:
            rest.append(line)
    prose = "\n".join(rest)
    inline = [s for s in _spans(prose) if START.match(s)]
    return commands + inline, re.sub(r"`[^`\n]+`", "", prose)


def collect() -> list[tuple[str, str]]:
    """(where, command) for every hinted command; fails if a ``-m dfd`` is left outside the commands."""
    found: list[tuple[str, str]] = []
    stray: list[str] = []
    for path in sorted((REPO / "app_pages").glob("*.py")) + [REPO / "streamlit_app.py"]:
        for text in _py_texts(path):
            commands = [s for s in _spans(text) if START.match(s)]
            found += [(path.name, c) for c in commands]
            if "-m dfd" in re.sub(r"`[^`\n]+`", "", text):
                stray.append(f"{path.name}: {text!r}")
    for path in (REPO / "README.md", REPO / "models" / "README.md"):
        commands, rest = _markdown_commands(path.read_text())
        found += [(str(path.relative_to(REPO)), c) for c in commands]
        stray += [f"{path.relative_to(REPO)}: {line}" for line in rest.splitlines() if "-m dfd" in line]
    assert not stray, "hinted commands outside `code`, so they cannot be checked:\n" + "\n".join(stray)
    return found


def tokens(command: str) -> list[str]:
    command = re.sub(r"<[^<>]*>", "x", command).replace(FIELD, "x")
    words = shlex.split(command, comments=True)
    words = words[3:] if words[:1] != ["dfd"] else words[1:]
    out = []
    for w in words:
        if w == "...":
            continue
        out.append(w[:-3] if w.endswith("...") else w)
    return out


def parse_error(command: str) -> str | None:
    """None if the command parses with the real parser, else argparse's complaint."""
    words = tokens(command)
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            parser.parse_args(words)
    except SystemExit as exc:
        if exc.code == 0:  # --help, --version
            return None
        if len(words) == 1 and words[0] in sub.choices:
            return None  # the command's name, mentioned
        return err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else f"exit {exc.code}"
    return None


def test_every_hinted_command_parses():
    hints = collect()
    assert len(hints) >= 15, hints  # the README's command list alone has 12
    assert {where for where, _ in hints} >= {"README.md", "models/README.md", "evaluation.py", "compare.py"}
    bad = [f"{where}: {command}\n    -> {err}" for where, command in hints if (err := parse_error(command))]
    assert not bad, "hinted commands that do not run:\n" + "\n".join(bad)


@pytest.mark.parametrize("command, ok", [
    ("python -m dfd evaluate <run> --data <folder>", False),  # the old hint
    ("python -m dfd evaluate <run> <folder>", True),
    ("python -m dfd robustness \x00 <folder>", True),
    ("python -m dfd train --data PATH --architecture ... --epochs ...", False),
    ("python -m dfd train ... --arch-kwargs '{\"head\": \"flat\"}'", True),
    ("python -m dfd ensemble", True),
    ("python -m dfd ensembl RUN", False),
    ("python -m dfd cross-dataset RUN... --data PATH  # each run", True),
    ("dfd --help", True),
    (ENV.sub("", "TF_CONFIG='{\"task\": {\"index\": 0}}' DFD_X=1 python -m dfd train --strategy multiworker"), True),
    (ENV.sub("", "TF_CONFIG='{}' python -m dfd train --strategies multiworker"), False),
])
def test_the_checker_itself(command: str, ok: bool):
    assert (parse_error(command) is None) == ok, parse_error(command)
