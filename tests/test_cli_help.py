"""One-line help lives in `cli.HELP` alone, so `--help` lists every command without
importing any command module (nor torch)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from attpc_classify import cli

COMMANDS_DIR = Path(cli.__file__).parent / "commands"


def test_every_command_has_one_help_line_in_cli_only() -> None:
    assert set(cli.HELP) == set(cli.COMMANDS)
    assert all(line and "\n" not in line for line in cli.HELP.values())
    for path in COMMANDS_DIR.glob("*.py"):
        tree = ast.parse(path.read_text())
        names = {t.id for node in tree.body if isinstance(node, ast.Assign)
                 for t in node.targets if isinstance(t, ast.Name)}  # fmt: skip
        assert "HELP" not in names, f"{path.name} repeats cli.HELP"


HELP_SCRIPT = """
import contextlib, io, sys
from attpc_classify.cli import main
with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):
    main(["--help"])  # argparse prints the help and exits
loaded = [m for m in sys.modules if m.startswith("attpc_classify.commands.")]
listed = all(name in out.getvalue() for name in sys.argv[1:])
print(len(loaded), "torch" in sys.modules, listed)
"""


def test_help_imports_no_command_module_and_no_torch() -> None:
    argv = [sys.executable, "-c", HELP_SCRIPT, *cli.COMMANDS]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["0", "False", "True"], done.stdout + done.stderr
