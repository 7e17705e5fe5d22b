"""The projectors each service runs, read statically from its package: every
`runtime.add_projector(name, topics, handler)` call, with the name and topics resolved through
constants and imports (nothing is executed). Used by the manifest and wiring tests."""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parlay_kit.dev import SERVICE_PORTS


@dataclass(frozen=True)
class ProjectorSpec:
    service: str
    name: str
    topics: tuple[str, ...]


def _module_file(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin, f"cannot locate {module}"
    return Path(spec.origin)


def _resolve(expr: ast.expr, module: str) -> Any:
    """Statically evaluate a projector's name/topics expression: literals, lists, module-level
    constants and `imported_module.CONSTANT`, following imports. Nothing is executed, so a
    service module that does not import cleanly right now does not break this test."""
    if isinstance(expr, ast.Constant):
        return expr.value
    if isinstance(expr, ast.List | ast.Tuple):
        return [_resolve(e, module) for e in expr.elts]
    tree = ast.parse(_module_file(module).read_text())
    if isinstance(expr, ast.Name):
        for node in tree.body:
            targets = (
                node.targets
                if isinstance(node, ast.Assign)
                else [node.target]
                if isinstance(node, ast.AnnAssign) and node.value
                else []
            )
            if any(isinstance(t, ast.Name) and t.id == expr.id for t in targets):
                return _resolve(node.value, module)  # type: ignore[union-attr,arg-type]
            if isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    if (alias.asname or alias.name) == expr.id:
                        return _resolve(ast.Name(alias.name), node.module)
        # A parameter of the composition function whose default is what production runs with
        # (tests pass topics of their own).
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                args = node.args
                named = [*zip(args.kwonlyargs, args.kw_defaults, strict=True)]
                positional = args.posonlyargs + args.args
                with_defaults = positional[len(positional) - len(args.defaults) :]
                named += zip(with_defaults, args.defaults, strict=True)
                for arg, default in named:
                    if arg.arg == expr.id and default is not None:
                        return _resolve(default, module)
        raise AssertionError(f"{module}: cannot resolve {expr.id}")
    if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name):
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    if (alias.asname or alias.name) == expr.value.id:
                        return _resolve(ast.Name(expr.attr), f"{node.module}.{alias.name}")
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if (alias.asname or alias.name) == expr.value.id:
                        return _resolve(ast.Name(expr.attr), alias.name)
    raise AssertionError(f"{module}: cannot resolve {ast.unparse(expr)}")


def discover_projectors() -> list[ProjectorSpec]:
    """Every `runtime.add_projector(name, topics, handler)` in the services' packages (the
    composition root and the modules that wire a part, e.g. the gateway's outbound delivery)."""
    found = []
    for service in SERVICE_PORTS:
        package = _module_file(f"parlay_{service}.main").parent
        for path in sorted(package.rglob("*.py")):
            relative = path.relative_to(package.parent).with_suffix("")
            module = ".".join(relative.parts).removesuffix(".__init__")
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "add_projector"
                ):
                    kwargs = {k.arg: k.value for k in node.keywords}
                    name_expr = node.args[0] if node.args else kwargs.get("name")
                    topics_expr = node.args[1] if len(node.args) > 1 else kwargs.get("topics")
                    assert name_expr is not None and topics_expr is not None, ast.unparse(node)
                    name = _resolve(name_expr, module)
                    topics = _resolve(topics_expr, module)
                    found.append(ProjectorSpec(service, name, tuple(topics)))
    return found
