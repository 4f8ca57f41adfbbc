"""A small PromQL lexer: the metric names an expression reads, and Grafana variables made concrete.

It is not a parser: ``promtool`` decides whether an expression parses (:mod:`ksentinel.dashboards.lint`).
What it needs to know is which identifiers are metric names::

    sum by (le, step) (rate(ksentinel_probe_step_duration_seconds_bucket{flow=~"$flow"}[$__rate_interval]))
    -> {"ksentinel_probe_step_duration_seconds_bucket"}

Functions and aggregations (an identifier followed by ``(``), keywords, label names inside ``{...}``
and in ``by``/``without``/``on``/``ignoring``/``group_left``/``group_right`` lists, and durations
inside ``[...]`` are not metric names; a ``{__name__="x"}`` matcher is.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["balanced", "concrete", "metric_names"]

_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or", "unless"}
    | {"atan2", "inf", "nan", "start", "end"}
    # aggregations may be followed by by/without instead of "("
    | {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values"}
    | {"bottomk", "topk", "quantile", "limitk", "limit_ratio"}
)
_LABEL_LISTS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?:[smhdwy]|ms)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_:]*)
  | (?P<variable>\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=(){}\[\],@:])
  | (?P<other>.)
    """,
    re.VERBOSE,
)
# Grafana's interval variables become a duration, every other variable a plain word
_DURATION_VARIABLES = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h", "__range_s": "3600"}


@dataclass(frozen=True)
class Token:
    kind: str
    text: str


def tokens(expr: str) -> Iterator[Token]:
    for match in _TOKEN.finditer(expr):
        kind = match.lastgroup or "other"
        if kind not in ("space", "comment"):
            yield Token(kind, match.group())


def metric_names(expr: str) -> set[str]:
    """The metric (and recorded series) names ``expr`` reads."""
    names: set[str] = set()
    toks = list(tokens(expr))
    braces = brackets = 0
    label_list_depth: int | None = None
    parens = 0
    for index, tok in enumerate(toks):
        nxt = toks[index + 1].text if index + 1 < len(toks) else ""
        if tok.text == "{":
            braces += 1
        elif tok.text == "}":
            braces = max(0, braces - 1)
        elif tok.text == "[":
            brackets += 1
        elif tok.text == "]":
            brackets = max(0, brackets - 1)
        elif tok.text == "(":
            parens += 1
        elif tok.text == ")":
            if label_list_depth is not None and parens == label_list_depth:
                label_list_depth = None
            parens -= 1
        if tok.kind != "ident":
            continue
        if braces:
            # {__name__="metric"}
            if tok.text == "__name__" and nxt == "=" and index + 2 < len(toks):
                value = toks[index + 2]
                if value.kind == "string":
                    names.add(value.text[1:-1])
            continue
        if brackets or label_list_depth is not None:
            continue
        lowered = tok.text.lower()
        if lowered in _LABEL_LISTS:
            if nxt == "(":
                label_list_depth = parens + 1
            continue
        if lowered in _KEYWORDS or nxt == "(":
            continue
        names.add(tok.text)
    return names


def concrete(expr: str) -> str:
    """``expr`` with Grafana variables replaced so that Prometheus can parse it."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        name = name.split(":", 1)[0]
        return _DURATION_VARIABLES.get(name, "var")

    return re.sub(r"\$\{([^}]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", replace, expr)


def balanced(expr: str) -> str | None:
    """A structural check for when promtool is missing: ``None``, or what is wrong."""
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    for tok in tokens(expr):
        if tok.kind == "other":
            return f"unexpected character {tok.text!r}"
        if tok.text in "([{":
            stack.append(tok.text)
        elif tok.text in pairs and (not stack or stack.pop() != pairs[tok.text]):
            return f"unbalanced {tok.text!r}"
    if stack:
        return f"unclosed {stack[-1]!r}"
    if not any(True for _ in tokens(expr)):
        return "empty expression"
    return None
