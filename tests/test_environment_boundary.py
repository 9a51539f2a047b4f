"""Nothing under processors/ reads the environment: settings and secrets are handed in.

The CLI reads the environment once (`cli.settings`, `cli.secrets`) and the composition root
(`cli.bootstrap`) passes values down; a processor that read ``os.environ`` itself would bypass
both, and a test or a second daemon in the same process could not configure it.
"""

from __future__ import annotations

import ast
from pathlib import Path

PROCESSORS = Path(__file__).resolve().parent.parent / "processors"
FORBIDDEN_OS = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}


def environment_reads(source: str) -> list[str]:
    """Each ``os.environ`` / ``os.getenv`` use (or import of them) in ``source``, with its line."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in FORBIDDEN_OS
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        ):
            found.append(f"{node.lineno}: os.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            found += [
                f"{node.lineno}: from os import {a.name}"
                for a in node.names
                if a.name in FORBIDDEN_OS
            ]
    return found


def test_the_checker_sees_every_form() -> None:
    sample = "import os\nfrom os import getenv\nx = os.environ['A']\ny = os.getenv('B')\n"
    assert sorted(environment_reads(sample)) == [
        "2: from os import getenv",
        "3: os.environ",
        "4: os.getenv",
    ]
    assert environment_reads("import os\nos.path.join('a')\n") == []


def test_no_module_under_processors_reads_the_environment() -> None:
    files = sorted(PROCESSORS.rglob("*.py"))
    assert len(files) > 20  # the walk found the package
    offenders = {
        str(f.relative_to(PROCESSORS.parent)): reads
        for f in files
        if (reads := environment_reads(f.read_text(encoding="utf-8")))
    }
    assert offenders == {}
