"""Long lines of generated code, split the way ruff format splits them.

Templates write each signature and call on one line; with long or many
parameter names one can pass 88 columns.  `wrap_long_lines` splits such a line
as ruff format does (its "right-hand split"): at the last bracket pair that
closes at the end of the line, first with everything between the brackets on
one indented line, else one item per line with a trailing comma, recursively.
Only whole statements on one line are touched; strings and docstrings never.
"""

from __future__ import annotations

import io
import keyword
import tokenize

from .printing import LINE_LENGTH

_OPEN, _CLOSE = "([{", ")]}"


def wrap_long_lines(source: str, width: int = LINE_LENGTH) -> str:
    """``source`` with every over-long one-line statement split as ruff would."""
    lines = source.splitlines(keepends=True)
    for row in sorted(_one_line_statements(source), reverse=True):
        line = lines[row - 1]
        if len(line.rstrip("\n")) > width:
            lines[row - 1] = "".join(
                text + "\n" for text in _split(line.rstrip("\n"), width)
            )
    return "".join(lines)


def _one_line_statements(source: str) -> list[int]:
    """The rows (1-based) of statements that start and end on the same line."""
    rows, start = [], None
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        kind = token.type
        if kind in (tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT):
            continue
        if kind == tokenize.NEWLINE:
            if start is not None and start == token.start[0]:
                rows.append(start)
            start = None
        elif start is None:
            start = token.start[0]
        elif token.end[0] != start:
            start = -1  # spans lines (a docstring, a bracketed continuation)
    return rows


def _split(line: str, width: int) -> list[str]:
    """One statement line laid out in lines of at most ``width`` where it can be."""
    if len(line) <= width:
        return [line]
    line = _parenthesise_bare_tuple(line)
    brackets = _last_bracket_pair(line)
    if brackets is None:
        return [line]  # nothing to split at: left as it is
    opening, closing = brackets
    indent = " " * (len(line) - len(line.lstrip()))
    head, body, tail = line[: opening + 1], line[opening + 1 : closing], line[closing:]
    body = body.strip()
    if not body:
        return [line]
    inner = indent + "    "
    # A collection display (a tuple, list, dict) with commas is always exploded,
    # one item per line; a call's or a def's arguments first try one line.
    items = _top_level_items(body)
    exploded = body.endswith(",") or (_is_display(head) and len(items) > 1)
    if len(inner) + len(body) <= width and not exploded:
        middle = [inner + body]
    else:  # one item per line, each split again if it is still too long
        middle = []
        for item in items:
            middle += _split(f"{inner}{item},", width)
    return [*_split(head, width), *middle, indent + tail.lstrip()]


def _parenthesise_bare_tuple(line: str) -> str:
    """``return a, b`` or ``x = a, b`` with the tuple in the parentheses ruff adds
    to split it; any other line as it is."""
    stripped = line.lstrip()
    if stripped.startswith("return "):
        start = len(line) - len(stripped) + len("return ")
    else:
        equals = [i for i, char in _top_level(line) if char == "="]
        if len(equals) != 1 or line[equals[0] - 1 : equals[0] + 2] != " = ":
            return line
        start = equals[0] + 2
    if not any(char == "," for _, char in _top_level(line[start:])):
        return line
    return f"{line[:start]}({line[start:].rstrip()})"


def _is_display(head: str) -> bool:
    """Whether the bracket ending ``head`` opens a tuple, list, set or dict (not a
    call, a subscript or a def's parameters)."""
    before = head[:-1]
    if not before or before.endswith(" "):
        return True  # formatted code has no space before a call's bracket
    if before[-1] in ")]":
        return False
    if before[-1].isalnum() or before[-1] == "_":
        word = before.split()[-1].split(".")[-1]
        return keyword.iskeyword(word)
    return True


def _last_bracket_pair(line: str) -> tuple[int, int] | None:
    """(opening, closing) of the bracket pair whose closing bracket is the last
    one on the line, followed by nothing but a colon or a comma; None if there
    is none."""
    stack, pairs = [], []
    for index, char in _bracket_characters(line):
        if char in _OPEN:
            stack.append(index)
        elif char in _CLOSE and stack:
            pairs.append((stack.pop(), index))
    if not pairs:
        return None
    opening, closing = max(pairs, key=lambda pair: pair[1])
    if line[closing + 1 :].strip() not in ("", ":", ","):
        return None
    return opening, closing


def _bracket_characters(line: str):
    """(index, character) of each bracket outside strings."""
    tokens = tokenize.generate_tokens(io.StringIO(line + "\n").readline)
    try:
        for token in tokens:
            if token.type == tokenize.OP and token.string in f"{_OPEN}{_CLOSE}":
                yield token.start[1], token.string
    except tokenize.TokenError:  # a line that opens a bracket it does not close
        return


def _top_level(text: str):
    """(index, character) of each comma and ``=`` outside brackets and strings."""
    depth = 0
    tokens = tokenize.generate_tokens(io.StringIO(text + "\n").readline)
    try:
        for token in tokens:
            if token.type != tokenize.OP:
                continue
            if token.string in _OPEN:
                depth += 1
            elif token.string in _CLOSE:
                depth -= 1
            elif token.string in ",=" and depth == 0:
                yield token.start[1], token.string
    except tokenize.TokenError:
        return


def _top_level_items(body: str) -> list[str]:
    """``body`` split at its commas outside brackets and strings."""
    items, start = [], 0
    for index, char in _top_level(body):
        if char == ",":
            items.append(body[start:index].strip())
            start = index + 1
    last = body[start:].strip()
    if last:
        items.append(last)
    return items
