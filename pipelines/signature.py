"""A user's function read from its source with ast, importing nothing: its module and name, and
the parameters it takes, so that a sweep is checked before any framework loads (a user's pipeline,
pipelines/user.py; a user's model function, models/user.py)."""

from __future__ import annotations

import ast
import importlib.util


def parse(ref: str) -> tuple[str, str]:
    """(module, function) of a `package.module:function` reference; ValueError when it is not one."""
    module, _, function = ref.partition(":")
    if not module or not function.isidentifier():
        raise ValueError(f"pipeline {ref!r}: expected package.module:function")
    return module, function


def parameters(ref: str, kind: str = "pipeline") -> tuple[list[str], list[str]]:
    """(the parameters of `ref`'s function, those without a default), read from its source."""
    module, function = parse(ref)
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        found = None
    if found is None or not found.origin or not found.origin.endswith(".py"):
        raise ValueError(f"{kind} {ref!r}: no module {module} on the path (is PYTHONPATH set?)")
    with open(found.origin) as f:
        tree = ast.parse(f.read())
    node = next(
        (n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == function), None
    )
    if node is None:
        raise ValueError(f"{kind} {ref!r}: {found.origin} defines no function {function}")
    args = node.args
    names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
    positional = args.posonlyargs + args.args
    required = [a.arg for a in positional[: len(positional) - len(args.defaults)]]
    required += [a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is None]
    return names, required
