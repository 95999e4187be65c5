"""README.md's Layout section lists every module of src/sentiment, and nothing that is not one."""

from __future__ import annotations

import re

from conftest import REPO

PACKAGE = REPO / "src" / "sentiment"
FILE = re.compile(r"\w+(\.py|\.c|\.pyi|/)")


def _listed() -> set[str]:
    """The files the Layout section names under `src/sentiment/` (a name at the start of an
    indented line, or a comma-separated run of them; its depth gives its package)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Layout", 1)[1].split("```", 2)[1]
    lines = block.splitlines()
    start = lines.index("src/sentiment/")
    names: set[str] = set()
    packages: list[str] = []
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break  # the next top-level folder (docker/, tests/, ...)
        depth = (len(line) - len(line.lstrip(" "))) // 2
        head = re.split(r"\s{2,}", line.strip(), maxsplit=1)[0]
        files = [name.strip() for name in head.rstrip(",").split(",")]
        if not all(FILE.fullmatch(name) for name in files):
            continue  # the description of the line above, continued
        del packages[depth - 1 :]
        for name in files:
            if name.endswith("/"):
                packages.append(name.rstrip("/"))
            else:
                names.add("/".join([*packages, name]))
    return names


def _tree() -> set[str]:
    return {
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*")
        if path.suffix in {".py", ".c", ".pyi"} and "__pycache__" not in path.parts
    }


def test_the_layout_lists_every_module_of_the_tree() -> None:
    assert sorted(_tree() - _listed()) == [], "modules missing from README.md's Layout"
    assert sorted(_listed() - _tree()) == [], "README.md's Layout lists what is not in the tree"
