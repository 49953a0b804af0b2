"""`calculator`: arithmetic a model should not do in its head, evaluated without `eval`."""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable

from pydantic import BaseModel, Field

from agents.errors import ToolError
from agents.tools.base import Tool, ToolContext, ToolResult

Number = int | float

MAX_EXPONENT = 1000
MAX_DIGITS = 1000
_TOO_BIG = 10**MAX_DIGITS

_BINARY: dict[type[ast.operator], Callable[[Number, Number], Number]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_FUNCTIONS: dict[str, Callable[..., Number]] = {
    "abs": abs,
    "round": lambda value, ndigits=None: _round(value, ndigits),
    "min": min,
    "max": max,
    "sqrt": math.sqrt,
    "floor": math.floor,
    "ceil": math.ceil,
    "log": math.log,
    "log10": math.log10,
    "exp": math.exp,
}
_CONSTANTS: dict[str, Number] = {"pi": math.pi, "e": math.e}

_PERCENT_OF = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*%\s*of\b", re.IGNORECASE)
_TIMES = re.compile(r"(?<=[\d)])\s*[x×]\s*(?=[\d(.])")
# Operators in words, as people write them: "17% of 2340 plus 12.5".
_WORD_OPS = {"plus": "+", "minus": "-", "times": "*", "multiplied by": "*", "divided by": "/"}
_WORDS = r"plus|minus|times|multiplied\s+by|divided\s+by"
_WORD_OP = re.compile(rf"\b({_WORDS})\b", re.IGNORECASE)
_NAMES = "|".join(sorted([*_FUNCTIONS, *_CONSTANTS], key=len, reverse=True))
_TOKEN = (
    rf"(?:\d+(?:\.\d+)?(?:e[-+]?\d+)?|\.\d+|\*\*|//|[-+*/%^×÷(),]|\b(?:{_NAMES}|of|x|{_WORDS})\b)"
)
_CANDIDATE = re.compile(rf"{_TOKEN}(?:[ \t]*{_TOKEN})*", re.IGNORECASE)
# An expression that stops at an operator has more after it that could not be read ("-" is
# left out: in prose it is mostly a dash).
_DANGLING = re.compile(rf"(?:[+*/^×÷]|\b(?:{_WORDS}))\s*$", re.IGNORECASE)
_TRAILING_OPS = re.compile(rf"(?:\s*(?:[-+*/%^×÷(,]|\b(?:{_WORDS})\b))+\s*$", re.IGNORECASE)
_KNOWN_WORDS = {"of", "x", "e", "by", *(w.split()[0] for w in _WORD_OPS), *_FUNCTIONS, *_CONSTANTS}


class CalculatorArgs(BaseModel):
    expression: str = Field(
        min_length=1,
        max_length=500,
        description="Arithmetic, e.g. '(3 + 4) * 2', '2 ** 10', 'sqrt(16)', '15% of 80'. "
        "Functions: abs, round, min, max, sqrt, floor, ceil, log, log10, exp; constants pi, e.",
    )


def normalize(expression: str) -> str:
    """Plain-English arithmetic as Python syntax: `15% of 80`, `3 x 4`, `2^8`, `÷`."""
    text = _PERCENT_OF.sub(r"(\1 / 100) *", expression)
    text = _WORD_OP.sub(lambda m: f" {_WORD_OPS[' '.join(m.group(1).lower().split())]} ", text)
    text = _TIMES.sub(" * ", text)
    return text.replace("×", "*").replace("÷", "/").replace("^", "**")


def evaluate(expression: str) -> Number:
    """The value of `expression`; ToolError for anything that is not plain arithmetic."""
    try:
        tree = ast.parse(normalize(expression).strip(), mode="eval")
    except (SyntaxError, ValueError) as e:
        unknown = [
            w for w in re.findall(r"[A-Za-z_]+", expression) if w.lower() not in _KNOWN_WORDS
        ]
        if unknown:
            words = ", ".join(f"'{w}'" for w in dict.fromkeys(unknown))
            raise ToolError(
                f"'{expression}' is not an arithmetic expression I can read: I do not know {words} "
                "(write numbers, + - * / ^ %, plus, minus, times, divided by, '15% of 80')"
            ) from e
        raise ToolError(f"'{expression}' is not an arithmetic expression I can read") from e
    try:
        value = _eval(tree.body)
    except ZeroDivisionError as e:
        raise ToolError(f"'{expression}' divides by zero") from e
    except OverflowError as e:
        raise ToolError(f"The result of '{expression}' is too large") from e
    except (ValueError, TypeError) as e:
        raise ToolError(f"'{expression}' cannot be computed: {e}") from e
    if isinstance(value, complex):
        raise ToolError(f"The result of '{expression}' is not a real number")
    return value


def _eval(node: ast.expr) -> Number:
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    ):
        return _checked(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd | ast.USub):
        value = _eval(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
        return _checked(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.Name):
        raise ToolError(
            f"'{node.id}' is not allowed: write numbers in digits; the only names I know are "
            f"{', '.join(_FUNCTIONS)}, {', '.join(_CONSTANTS)}"
        )
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
        and node.args
    ):
        return _checked(_FUNCTIONS[node.func.id](*(_eval(a) for a in node.args)))
    raise ToolError(
        f"'{ast.unparse(node)}' is not allowed: only numbers, + - * / // % ** "
        f"(or plus, minus, times, divided by), parentheses, {', '.join(_FUNCTIONS)} "
        f"and {', '.join(_CONSTANTS)}"
    )


def _check_power(base: Number, exponent: Number) -> None:
    if abs(exponent) > MAX_EXPONENT:
        shown = format_number(exponent)
        raise ToolError(f"The exponent {shown} is too large (at most {MAX_EXPONENT})")
    # Refuse before building the integer, not after.
    if (
        isinstance(base, int)
        and isinstance(exponent, int)
        and (abs(base).bit_length() - 1) * exponent > _TOO_BIG.bit_length()
    ):
        raise ToolError(f"The result would have more than {MAX_DIGITS} digits")


def _round(value: Number, ndigits: Number | None) -> Number:
    # round(n, -k) on an int computes 10**k, so a huge k would never finish.
    if ndigits is not None and (not isinstance(ndigits, int) or abs(ndigits) > 100):
        raise ToolError("round() takes a whole number of digits between -100 and 100")
    return round(value, ndigits)


def _checked(value: Number | complex) -> Number:
    if isinstance(value, complex):
        raise ValueError("the result is not a real number")
    if isinstance(value, int) and abs(value) >= _TOO_BIG:
        raise ToolError(f"The result would have more than {MAX_DIGITS} digits")
    if isinstance(value, float) and not math.isfinite(value):
        raise OverflowError
    return value


def format_number(value: Number) -> str:
    """A result as a person writes it: no `.0` on whole numbers, 12 significant digits."""
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.12g}"
    return str(value)


class Calculator(Tool[CalculatorArgs]):
    name = "calculator"
    description = (
        "Evaluate an arithmetic expression exactly: + - * / // % ** (or ^), parentheses, "
        "'15% of 80', and abs, round, min, max, sqrt, floor, ceil, log, log10, exp, pi, e."
    )
    Args = CalculatorArgs

    async def run(self, args: CalculatorArgs, ctx: ToolContext) -> ToolResult:
        """Evaluate the expression."""
        value = evaluate(args.expression)
        shown = format_number(value)
        line = f"{args.expression.strip()} = {shown}"
        return ToolResult(
            summary=line, content=line, data={"expression": args.expression, "value": value}
        )

    def args_from_text(self, text: str) -> list[CalculatorArgs]:
        """Each arithmetic expression in the text, whole.

        One that stops at an operator ("17% of 2340 plus twelve") is passed on with the rest
        of its clause, so the calculator says what it could not read instead of quietly
        computing the part before it.
        """
        found: list[CalculatorArgs] = []
        for match in _CANDIDATE.finditer(text):
            parts = _split_top_level(match.group(0))
            for i, part in enumerate(parts):
                raw = part.strip().rstrip(" \t,")
                expression = _trim(raw)
                if not _worth_computing(expression):
                    continue
                if i == len(parts) - 1 and _DANGLING.search(raw):
                    rest = re.match(r"[^.,;:!?\n]*", text[match.end() :])
                    unread = f"{raw} {rest.group(0).strip() if rest else ''}".strip()
                    found.append(CalculatorArgs(expression=unread[:500]))
                    continue
                try:
                    evaluate(expression)
                except ToolError:
                    continue
                found.append(CalculatorArgs(expression=expression))
        return found


def _trim(raw: str) -> str:
    """An expression without trailing operators and unopened closing brackets."""
    expression = _TRAILING_OPS.sub("", raw)
    while expression.endswith(")") and expression.count(")") > expression.count("("):
        expression = expression[:-1].rstrip()
    return expression


def _split_top_level(candidate: str) -> list[str]:
    # "2+2, 3*3" is two expressions; the comma in "max(2, 3)" is not a separator.
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(candidate):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth <= 0:
            parts.append(candidate[start:i])
            start = i + 1
    parts.append(candidate[start:])
    return parts


def _worth_computing(expression: str) -> bool:
    # A bare number ("in 2024") is not a calculation; an operator or a function call is.
    return bool(re.search(r"\d", expression)) and bool(
        re.search(rf"[-+*/%^×÷]|\w\s*\(|\bx\b|\b(?:{_WORDS})\b", expression.lstrip("+-"), re.I)
    )
