"""The errors symgrad raises for a user's mistakes, all ValueErrors.

A `FormulaError` names the problem and, where there is one, its position in the
formula, on one line, so the command line can print it as it is.
"""

from __future__ import annotations


class SymgradError(ValueError):
    """Something a user asked of symgrad cannot be done as asked."""


class FormulaError(SymgradError):
    """A formula that cannot become a layer: bad syntax, an unknown name, a value
    that is complex, infinite or not differentiable."""

    def __init__(
        self, message: str, source: str | None = None, column: int | None = None
    ):
        self.message, self.source, self.column = message, source, column
        where = ""
        if source is not None and column is not None:
            where = f" at column {column + 1} of {source.strip()!r}"
        super().__init__(message + where)


class MissingFrameworkError(ImportError):
    """A target's framework (PyTorch, JAX) is not installed; the message names the
    extra that installs it."""


#: What SymPy raises on a formula it cannot handle (an integral it cannot do, a
#: constant with more digits than memory): reported as a `FormulaError`.
SYMPY_FAILURES: tuple[type[Exception], ...] = (
    TypeError,
    ValueError,
    NotImplementedError,
    ZeroDivisionError,
    OverflowError,
)
