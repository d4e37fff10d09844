"""Reading configuration files: YAML with line numbers, models with located problems.

Every problem names the file, the path inside it (with the line of its key where known) and
what to fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from worker.errors import ConfigProblem

M = TypeVar("M", bound=BaseModel)


class Problems:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.items: list[ConfigProblem] = []

    def add(self, file: Path, path: str, message: str, line: int | None = None) -> ConfigProblem:
        where = f"{path} (line {line})" if line and path else path
        problem = ConfigProblem(display(file, self.root), where, message)
        self.items.append(problem)
        return problem

    def at(self, doc: Doc, path: tuple[str | int, ...], message: str) -> ConfigProblem:
        """A problem at `path` inside a read file, with the line of that path."""
        return self.add(doc.file, ".".join(str(p) for p in path), message, line_of(doc.node, path))


def display(file: Path, root: Path) -> str:
    try:
        return str(file.relative_to(root.parent)) if root.parent != file else str(file)
    except ValueError:
        return str(file)


# --- reading files -------------------------------------------------------------------


@dataclass
class Doc:
    file: Path
    data: Any
    node: yaml.Node | None


def read_yaml(file: Path, problems: Problems) -> Doc | None:
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        problems.add(file, "", f"cannot read the file ({exc.strerror}); check it exists")
        return None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        context, opened = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and opened is not None and (mark is None or opened.line != mark.line):
            # An unclosed bracket or quote is found lines later: say where it was opened.
            what += f", {context} that starts at line {opened.line + 1}, column {opened.column + 1}"
        problems.add(file, where, f"YAML syntax error: {what}; fix the syntax at that spot")
        return None
    if not isinstance(data, dict):
        problems.add(file, "", "the file must hold a mapping (key: value lines) at the top")
        return None
    return Doc(file, data, node)


def line_of(node: yaml.Node | None, path: tuple[str | int, ...]) -> int | None:
    """The 1-based line of `path` inside a composed YAML tree, as near as it exists.

    A mapping entry is found on the line of its key: a block value starts a line later.
    """
    found, mark = node, (node.start_mark if node is not None else None)
    for part in path:
        if isinstance(found, yaml.MappingNode):
            key, nxt = next(((k, v) for k, v in found.value if k.value == str(part)), (None, None))
            mark = key.start_mark if key is not None else mark
        elif isinstance(found, yaml.SequenceNode) and isinstance(part, int):
            nxt = found.value[part] if part < len(found.value) else None
            mark = nxt.start_mark if nxt is not None else mark
        else:
            nxt = None
        if nxt is None:
            break
        found = nxt
    return mark.line + 1 if mark is not None else None


def parse_model(model: type[M], doc: Doc, problems: Problems) -> M | None:
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        seen: set[tuple[str, str]] = set()
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if not str(p).startswith(("function-", "tagged-")))
            loc = _as_written(doc.data, tuple(p for p in loc if p not in _UNION_MEMBERS))
            path = ".".join(str(p) for p in loc) or "(top level)"
            message = _explain(err)
            if (path, message) not in seen:
                seen.add((path, message))
                problems.add(doc.file, path, message, line_of(doc.node, loc))
        return None


_UNION_MEMBERS = ("Period", "SettingPeriod", "str", "int")


def _as_written(data: Any, loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Map a path inside a single-stage rule's implied stage back to where the file has it."""
    if len(loc) < 5 or loc[0] != "rules" or loc[2] != "stages" or loc[3] != 0:
        return loc
    rules = data.get("rules") if isinstance(data, dict) else None
    index = loc[1]
    if not isinstance(rules, list) or not isinstance(index, int) or index >= len(rules):
        return loc
    rule = rules[index]
    if not isinstance(rule, dict) or "stages" in rule:
        return loc
    field, rest = loc[4], loc[5:]
    if field == "period":
        return ("rules", index, "after", "period", *rest)
    return ("rules", index, field, *rest)


def _explain(err: Any) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown field; remove it or check its spelling"
    if kind == "missing":
        return "required field is missing; add it"
    message = str(err["msg"]).removeprefix("Value error, ")
    if "input" in err and kind not in ("model_type", "dict_type"):
        return f"{message} (got {err['input']!r})"
    return message


# --- the whole directory -----------------------------------------------------------------
