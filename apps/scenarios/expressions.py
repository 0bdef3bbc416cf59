"""The safe expression language of run conditions and reporter conditions (simpleeval)."""

from __future__ import annotations

from simpleeval import EvalWithCompoundTypes, InvalidExpression

FUNCTIONS = {
    "len": len,
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "abs": abs,
    "min": min,
    "max": max,
    "round": round,
    "lower": str.lower,
    "upper": str.upper,
}


class ExpressionError(ValueError):
    pass


def evaluate(expression: str, names: dict):
    try:
        return EvalWithCompoundTypes(names=names, functions=FUNCTIONS).eval(expression)
    except (
        InvalidExpression,
        SyntaxError,
        TypeError,
        ValueError,
        KeyError,
        AttributeError,
        ZeroDivisionError,
        IndexError,
    ) as error:
        raise ExpressionError(f"{type(error).__name__}: {error}") from None


def check_syntax(expression: str) -> None:
    """Raise ExpressionError for an expression that cannot even be parsed."""
    try:
        EvalWithCompoundTypes().parse(expression)
    except SyntaxError as error:
        raise ExpressionError(f"Syntax error: {error.msg}") from None
