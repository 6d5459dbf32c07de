"""Print every function (and method) longer than N lines in the given trees, longest first.

    python scripts/long_functions.py [--max-lines 80] [PATH ...]    # default: src scripts

Length counts from the ``def`` line (decorators excluded) to the function's last line, docstring included.
Exit code 0 always: this is a report, not a gate.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path


def long_functions(paths: list[Path], max_lines: int) -> list[tuple[int, str, str]]:
    """``(lines, "file:line", qualified name)`` of each function over ``max_lines`` lines, longest first."""
    found = []
    for root in paths:
        files = [root] if root.is_file() else sorted(root.rglob("*.py"))
        for f in files:
            tree = ast.parse(f.read_text(), filename=str(f))
            stack: list[tuple[ast.AST, str]] = [(tree, "")]
            while stack:
                node, prefix = stack.pop()
                for child in ast.iter_child_nodes(node):
                    if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                        name = f"{prefix}{child.name}"
                        if not isinstance(child, ast.ClassDef):
                            n = child.end_lineno - child.lineno + 1
                            if n > max_lines:
                                found.append((n, f"{f}:{child.lineno}", name))
                        stack.append((child, name + "."))
    return sorted(found, reverse=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="*", type=Path, default=[Path("src"), Path("scripts")])
    ap.add_argument("--max-lines", type=int, default=80)
    args = ap.parse_args()
    rows = long_functions(args.paths, args.max_lines)
    for n, where, name in rows:
        print(f"{n:5d}  {name}  ({where})")
    print(f"{len(rows)} function(s) over {args.max_lines} lines")


if __name__ == "__main__":
    main()
