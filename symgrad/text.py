"""Text that reaches generated files, made safe where it lands.

User text (a command line, a summary, a name) lands in generated files in a few
places only: a ``#`` or ``%`` comment (the "Regenerate with" header), a
docstring, a LaTeX paragraph.  Each place has one function here, and every
template and writer goes through it, so no character can end the comment or
the string it sits in and start code.  Names are checked where they are made
(`symgrad.model.check_name`); this is the second line.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable


def escape_unprintable(text: str, keep: str = "") -> str:
    """``text`` with every character that is not printable (line breaks, tabs,
    control and format characters, U+2028) written as its Python escape, except
    those in ``keep``."""
    return "".join(
        c if c.isprintable() or c in keep else c.encode("unicode_escape").decode()
        for c in text
    )


def comment(text: str) -> str:
    """``text`` for a one-line comment: nothing in it can start a new line."""
    return escape_unprintable(text)


def docstring(text: str) -> str:
    """``text`` for the inside of a (raw) triple-quoted docstring: its own lines
    kept, other unprintable characters escaped, no ``\"\"\"`` that would close
    it, and no backslash at the end that would escape the closing quote."""
    text = escape_unprintable(text, keep="\n").replace('"""', '""\\"')
    return text + " " if text.endswith(("\\", '"')) else text


def shell_word(word: str) -> str:
    """One word for a POSIX shell (bash, zsh): quoted by `shlex.quote`, or, where
    it holds unprintable characters (a line break), as ``$'...'`` with escapes,
    so that the command stays on one line and still means the same."""
    if word.isprintable():
        return shlex.quote(word)
    escaped = "".join(_shell_escape(c) for c in word)
    return f"$'{escaped}'"


def _shell_escape(char: str) -> str:
    """One character inside ``$'...'``; a byte that was not UTF-8 (Python holds
    it as a lone surrogate, U+DC80-U+DCFF) is written as that byte, ``\\xff``."""
    if char in "'\\":
        return "\\" + char
    if "\udc80" <= char <= "\udcff":
        return f"\\x{ord(char) - 0xDC00:02x}"
    return escape_unprintable(char)


def shell_join(words: Iterable[str]) -> str:
    """A command line that a shell reads back as ``words``, on one line."""
    return " ".join(shell_word(w) for w in words)
