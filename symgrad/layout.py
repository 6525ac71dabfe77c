"""Long lines of generated code, split the way ruff format splits them.

Templates and printers write each statement on one line; with long or many
parameter names a line can pass 88 columns.  `wrap_long_lines` splits such a
statement as ruff format does:

* a right-hand side with two or more operators of its loosest kind (``a + b +
  c``) goes in parentheses, one operand per line, each led by its operator;
* otherwise the statement is split at its last bracket pair (passing over
  trailing subscripts such as ``[0]`` when the line before would not fit):
  everything between the brackets on one indented line, or one item per line
  with a trailing comma (always so for a tuple, list or dict display; never
  for a lone argument, which is split in itself);
* where that pair would open past the margin, a value with one operator is
  split at its first operand's brackets, and any other value goes in
  parentheses on lines of its own; targets too long for ``targets = (`` are
  exploded as a tuple;
* ``return a, b`` and ``x = a, b`` get the parentheses ruff adds to a tuple.

Each piece is split again while it is too long.  Only statements on one line
are touched; strings and docstrings never.
"""

from __future__ import annotations

import io
import keyword
import tokenize
from collections.abc import Iterator

from .printing import LINE_LENGTH

_OPEN, _CLOSE = "([{", ")]}"
#: Binary operators by how loosely they bind (ruff's and black's split priorities).
_PRIORITY = {
    **dict.fromkeys(["<", ">", "<=", ">=", "==", "!="], 10),
    "|": 9, "^": 8, "&": 7, "<<": 6, ">>": 6, "+": 5, "-": 5,
    **dict.fromkeys(["*", "/", "//", "%", "@"], 4),
}  # fmt: skip
_ASSIGNMENTS = {"=", "+=", "-=", "*=", "/=", "//=", "%=", "@=", "&=", "|=", "^="}


def wrap_long_lines(source: str, width: int = LINE_LENGTH) -> str:
    """``source`` with every over-long one-line statement split as ruff would."""
    lines = source.splitlines(keepends=True)
    for row in sorted(_one_line_statements(source), reverse=True):
        line = lines[row - 1].rstrip("\n")
        if len(line) > width:
            lines[row - 1] = "".join(text + "\n" for text in _split(line, width))
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
    """One line laid out in lines of at most ``width`` where it can be."""
    if len(line) <= width:
        return [line]
    line = _parenthesise_bare_tuple(line)
    value = _value_start(line)
    if value is not None:
        operators = _loosest_operators(line[value:])
        subscript = _ends_in_subscript(line)
        if len(operators) == 1 and not subscript:
            last = _bracket_split_pair(line, width)
            if last is not None and last[0] + 1 > width:
                # The last call opens past the margin: ruff splits the first
                # operand's brackets if that is a call opening within it.
                first = _first_operand_pair(line, value + operators[0], width)
                if first is not None:
                    return _split_at_brackets(line, width, first)
        if len(operators) >= 2 or (
            len(operators) == 1 and (subscript or not _bracket_split_fits(line, width))
        ):
            return _split_at_operators(line, value, operators, width)
        pair = _bracket_split_pair(line, width)
        if not operators and (pair is None or pair[0] + 1 > width):
            return _split_value(line, value, pair is not None, width)
    return _split_at_brackets(line, width)


def _split_value(line: str, value: int, splittable: bool, width: int) -> list[str]:
    """A value without operators whose own brackets cannot split the line (``a,
    b = ctx.saved``, or a call that opens past the margin): in parentheses on
    lines of its own where ``target = (`` fits and the value then fits or can be
    split (``splittable``); otherwise the targets exploded as a tuple, or, for
    ``return`` (a long string), left as it is."""
    indent = _indent(line)
    target = line[:value].rstrip()
    inner = indent + "    " + line[value:].strip()
    if len(target) + 2 <= width and (splittable or len(inner) <= width):
        return [f"{target} (", *_split(inner, width), indent + ")"]
    return _split_targets(line, value, width)


def _split_targets(line: str, value: int, width: int) -> list[str]:
    """Targets too long for ``targets = (``: exploded as a tuple, one per line,
    the value after them; a ``return`` or a single target is left as it is."""
    indent = _indent(line)
    target = line[:value].rstrip()
    if target.lstrip().startswith("return"):
        return [line]  # an atom too long even in parentheses is left as it is
    *names, operator = target.split()
    items = _top_level_items(" ".join(names))
    if len(items) < 2:
        return [line]
    return [
        indent + "(",
        *(f"{indent}    {item}," for item in items),
        *_split(f"{indent}) {operator} {line[value:].strip()}", width),
    ]


def _split_at_operators(
    line: str, value: int, operators: list[int], width: int
) -> list[str]:
    """``target = (`` the value, one operand per line, ``)``."""
    if len(line[:value].rstrip()) + 2 > width:
        return _split_targets(line, value, width)
    indent = _indent(line)
    inner = indent + "    "
    expression = line[value:]
    if len(inner) + len(expression.strip()) <= width:
        middle = [inner + expression.strip()]
    else:
        cuts = [0, *operators, len(expression)]
        pieces = [expression[a:b].strip() for a, b in zip(cuts, cuts[1:], strict=False)]
        middle = []
        for piece in pieces:
            middle += _split(inner + piece, width)
    return [f"{line[:value].rstrip()} (", *middle, indent + ")"]


def _split_at_brackets(
    line: str, width: int, brackets: tuple[int, int] | None = None
) -> list[str]:
    """Split at ``brackets`` (by default the pair `_bracket_split_pair` picks)."""
    brackets = brackets or _bracket_split_pair(line, width)
    if brackets is None:
        return [line]  # nothing to split at: left as it is
    opening, closing = brackets
    indent = _indent(line)
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
    elif len(items) == 1 and not exploded:  # one argument: split in itself, no comma
        middle = _split(inner + body, width)
    else:  # one item per line, each split again if it is still too long
        middle = []
        for item in items:
            middle += _split(f"{inner}{item},", width)
    return [*_split(head, width), *middle, *_split(indent + tail.lstrip(), width)]


def _first_operand_pair(line: str, operator: int, width: int) -> tuple[int, int] | None:
    """Where to split the operand before ``operator`` (an index into ``line``)
    when it ends in brackets: as `_bracket_split_pair` picks them, if they open
    within ``width``."""
    pair = _bracket_split_pair(line[:operator].rstrip(), width)
    if pair is None or pair[0] + 1 > width or _is_display(line[: pair[0] + 1]):
        return None
    return pair


def _ends_in_subscript(line: str) -> bool:
    """Whether the line ends in a subscript (``a[i]``), which ruff, unlike a
    call's brackets, does not split when the value has an operator to split at."""
    pairs = _bracket_pairs(line)
    if not pairs or not line.rstrip().endswith("]"):
        return False
    opening = max(pairs, key=lambda pair: pair[1])[0]
    return not _is_display(line[: opening + 1])


def _bracket_split_fits(line: str, width: int) -> bool:
    pair = _bracket_split_pair(line, width)
    return pair is not None and pair[0] + 1 <= width


def _bracket_split_pair(line: str, width: int) -> tuple[int, int] | None:
    """The bracket pair to split at: the last one that closes at the end of the
    line (before a colon or comma), or, where the line up to its opening would
    not fit, an earlier one that only trailers (``[0]``, ``.name``) follow."""
    pairs = _bracket_pairs(line)
    if not pairs:
        return None
    last = max(pairs, key=lambda pair: pair[1])
    if line[last[1] + 1 :].strip() not in ("", ":", ","):
        return None
    chosen = last
    closing_at = {pair[1]: pair for pair in pairs}
    while chosen[0] + 1 > width:
        before = line[: chosen[0]]
        trimmed = before.rstrip()
        dotted = trimmed.rsplit(".", 1)
        if before.endswith((")", "]")):
            earlier = closing_at.get(chosen[0] - 1)
        elif len(dotted) == 2 and dotted[1].isidentifier() and dotted[0].endswith(")"):
            earlier = closing_at.get(len(dotted[0]) - 1)
        else:
            earlier = None
        if earlier is None:
            break
        chosen = earlier
    if not line[chosen[0] + 1 : chosen[1]].strip():
        return None  # empty brackets (``f()``) give nothing to split
    return chosen


def _parenthesise_bare_tuple(line: str) -> str:
    """``return a, b`` or ``x = a, b`` with the tuple in the parentheses ruff adds
    to split it; any other line as it is."""
    start = _value_start(line)
    if start is None or not any(char == "," for _, char in _top_level(line[start:])):
        return line
    return f"{line[:start]}({line[start:].strip()})"


def _value_start(line: str) -> int | None:
    """Where the value of ``return value`` or ``target = value`` (``+=``...)
    starts, or None for other statements."""
    stripped = line.lstrip()
    if stripped.startswith("return "):
        return len(line) - len(stripped) + len("return ")
    assignments = [
        (at, token) for at, token in _top_level(line) if token in _ASSIGNMENTS
    ]
    if len(assignments) != 1:
        return None
    at, token = assignments[0]
    return at + len(token) + 1


def _loosest_operators(expression: str) -> list[int]:
    """Where the binary operators of the loosest kind at the top level of
    ``expression`` are (indices into it), or [] if it has none."""
    found = [(at, token) for at, token in _top_level(expression) if token in _PRIORITY]
    if not found:
        return []
    loosest = max(_PRIORITY[token] for _, token in found)
    return [at for at, token in found if _PRIORITY[token] == loosest]


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


def _indent(line: str) -> str:
    return " " * (len(line) - len(line.lstrip()))


def _tokens(text: str) -> Iterator[tokenize.TokenInfo]:
    """The tokens of one line of code (which may leave a bracket open)."""
    try:
        yield from tokenize.generate_tokens(io.StringIO(text + "\n").readline)
    except tokenize.TokenError:  # a line that opens a bracket it does not close
        return


def _bracket_pairs(line: str) -> list[tuple[int, int]]:
    """(opening, closing) indices of the matched brackets outside strings."""
    stack, pairs = [], []
    for token in _tokens(line):
        if token.type != tokenize.OP:
            continue
        if token.string in _OPEN:
            stack.append(token.start[1])
        elif token.string in _CLOSE and stack:
            pairs.append((stack.pop(), token.start[1]))
    return pairs


def _top_level(text: str) -> Iterator[tuple[int, str]]:
    """(index, operator) of each comma, assignment and binary operator outside
    brackets and strings (a unary minus is not a binary operator)."""
    depth, previous = 0, None
    for token in _tokens(text):
        if token.type in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER):
            continue
        if token.type == tokenize.OP:
            if token.string in _OPEN:
                depth += 1
            elif token.string in _CLOSE:
                depth = max(depth - 1, 0)  # a line may start ``) = value``
            elif depth == 0 and _is_binary(token.string, previous):
                yield token.start[1], token.string
        previous = token
    return


def _is_binary(operator: str, previous: tokenize.TokenInfo | None) -> bool:
    if operator not in ("+", "-"):
        return True
    if previous is None:
        return False
    if previous.type == tokenize.NAME:  # an operand, unless a keyword: return -x
        return not keyword.iskeyword(previous.string) or previous.string in (
            "True",
            "False",
            "None",
        )
    return previous.type in (tokenize.NUMBER, tokenize.STRING) or (
        previous.string in _CLOSE
    )


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
