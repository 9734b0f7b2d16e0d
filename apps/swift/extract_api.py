"""List the public API of TensorFlowLiteSwift from its Swift sources, one declaration a line.

    python apps/swift/extract_api.py SOURCES_DIR --version 2.17.0 --origin "..." > apps/swift/tensorflowliteswift_2.17.0_api.txt

SOURCES_DIR holds ``tensorflow/lite/swift/Sources/*.swift`` of one TensorFlowLiteSwift release.
Each output line is ``OWNER | DECLARATION | FILE:LINE``: OWNER is the type the member belongs
to (``Interpreter.Options`` for a member of a nested type; ``-`` for a top-level type),
DECLARATION the ``public`` declaration with whitespace collapsed (an ``init``/``func`` up to its
body), or ``case NAME`` for a case of a public enum. ``tests/apps/test_swift_snippet.py`` checks
every TensorFlowLiteSwift member the iOS snippet uses against this list (no Swift compiler runs
in ich-edge's CI). Only the standard library is used.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

_TYPE = re.compile(r"^\s*(?:public\s+)?(?:final\s+)?(class|struct|enum|protocol|extension)\s+([\w.]+)")
_PUBLIC = re.compile(r"^\s*(?:@\w+(?:\([^)]*\))?\s+)*public\s")
_CASE = re.compile(r"^\s*case\s+(\w+)")


def _strip(line: str) -> str:
    """The line without its // comment and string literals (for brace counting)."""
    line = re.sub(r'"(?:\\.|[^"\\])*"', '""', line)
    return line.split("//", 1)[0]


def _declaration(lines: list[str], start: int) -> str:
    """The declaration beginning at ``lines[start]``, joined up to its body or end."""
    parts = []
    for index in range(start, min(start + 6, len(lines))):
        code = _strip(lines[index]).strip()
        body = code.find("{")
        parts.append(code[:body] if body >= 0 else code)
        following = lines[index + 1].strip() if index + 1 < len(lines) else ""
        if body >= 0 or not code.endswith(("(", ",")) and not following.startswith(("throws", "->", "{")):
            break
    return re.sub(r"\s+", " ", " ".join(parts)).strip().replace("( ", "(").replace(" )", ")")


def extract(path: Path, relative: str) -> list[str]:
    """The public declarations of one Swift file as output lines."""
    lines = path.read_text(encoding="utf-8").splitlines()
    stack: list[tuple[str | None, bool, int]] = []  # (type name, is a public enum, depth it opened at)
    depth, out = 0, []
    for number, line in enumerate(lines, start=1):
        code = _strip(line)
        owner = ".".join(name for name, _, _ in stack if name) or "-"
        type_match = _TYPE.match(code)
        if _PUBLIC.match(code):
            out.append(f"{owner} | {_declaration(lines, number - 1)} | {relative}/{path.name}:{number}")
        elif stack and stack[-1][1] and _CASE.match(code) and depth == stack[-1][2] + 1:
            out.append(f"{owner} | case {_CASE.match(code).group(1)} | {relative}/{path.name}:{number}")
        opened = code.count("{") - code.count("}")
        if type_match and "{" in code:
            kind, name = type_match.groups()
            is_public = bool(_PUBLIC.match(code)) or kind == "extension"
            # Extensions are top-level and name their type in full (``extension Tensor.Shape``).
            stack.append((name if is_public else None, kind == "enum" and is_public, depth))
        depth += opened
        while stack and depth <= stack[-1][2]:
            stack.pop()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", type=Path)
    parser.add_argument("--version", required=True)
    parser.add_argument("--origin", required=True, help="where the sources came from (written in the header)")
    parser.add_argument("--relative", default="tensorflow/lite/swift/Sources")
    args = parser.parse_args(argv)
    print(f"# TensorFlowLiteSwift {args.version}: public API (written by apps/swift/extract_api.py).")
    for line in args.origin.splitlines():
        print(f"# {line}")
    print("# OWNER | DECLARATION | SOURCE FILE:LINE")
    for path in sorted(args.sources.glob("*.swift")):
        for entry in extract(path, args.relative):
            print(entry)
    return 0


if __name__ == "__main__":
    sys.exit(main())
