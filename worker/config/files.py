"""Reading configuration files: bounded YAML with line numbers, models with located problems.

Every problem names the file, the path inside it (with the line of its key where known) and
what to fix. Reading never raises for what a file holds: too large, not UTF-8, not a regular
file, bad YAML or a graph past the bounds of `worker.config.yamlsafe` each become one problem.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from worker.config import yamlsafe
from worker.config.values import short
from worker.errors import ConfigProblem

M = TypeVar("M", bound=BaseModel)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

WHOLE_FILE = "(whole file)"
Index = dict[int, dict[str, tuple[yaml.Node, yaml.Node]]]
"""Per mapping node (by id): its first key and value node per key text."""
MAX_PROBLEMS_PER_FILE = 50


class Problems:
    """The problems found so far, each with its file shown relative to the configuration.

    At most `MAX_PROBLEMS_PER_FILE` are kept per file; past that, one "… and N more" problem
    (its N counting on) stands for the rest, so output and memory stay bounded.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.items: list[ConfigProblem] = []
        self._per_file: dict[str, int] = {}
        self._more: dict[str, int] = {}  # file → index of its "… and N more" item

    def add(self, file: Path, path: str, message: str, line: int | None = None) -> ConfigProblem:
        """A problem at `path` (dotted, or a place such as "line 3, column 7") in `file`.

        Control characters in the path (a key written "x\\ny") are shown escaped, so each
        problem stays one line.
        """
        path = _CONTROL.sub(lambda m: repr(m.group())[1:-1], path)
        where = f"{path} (line {line})" if line and path else path
        problem = ConfigProblem(display(file, self.root), where, message)
        count = self._per_file.get(problem.file, 0) + 1
        self._per_file[problem.file] = count
        if count <= MAX_PROBLEMS_PER_FILE:
            self.items.append(problem)
            return problem
        # A hostile file must not produce unbounded output: one line stands for the rest.
        more = ConfigProblem(
            problem.file,
            WHOLE_FILE,
            f"… and {count - MAX_PROBLEMS_PER_FILE} more problem(s) in this file; fix the "
            "ones above and validate again",
        )
        if count == MAX_PROBLEMS_PER_FILE + 1:
            self._more[problem.file] = len(self.items)
            self.items.append(more)
        else:
            self.items[self._more[problem.file]] = more
        return problem

    def at(self, doc: Doc, path: tuple[str | int, ...], message: str) -> ConfigProblem:
        """A problem at `path` inside a read file, with the line of that path."""
        return self.add(doc.file, dotted(path), message, doc.line_of(path))


def dotted(path: tuple[Any, ...]) -> str:
    """`subjects.user.columns.full_name`; a part longer than 60 characters is cut."""
    return ".".join(p if len(p := str(part)) <= 60 else p[:55] + "…" for part in path)


def display(file: Path, root: Path) -> str:
    try:
        return str(file.relative_to(root.parent)) if root.parent != file else str(file)
    except ValueError:
        return str(file)


# --- reading files -------------------------------------------------------------------


@dataclass
class Doc:
    """A read file: its data, and the composed node tree that knows each value's line."""

    file: Path
    data: Any
    node: yaml.Node | None
    _index: Index = field(default_factory=dict, repr=False)

    def line_of(self, path: tuple[str | int, ...]) -> int | None:
        """`line_of(self.node, path)`, each mapping's keys indexed once for all calls."""
        return line_of(self.node, path, self._index)


def yaml_files(folder: Path, problems: Problems) -> list[Path]:
    """The `*.yaml` files of `folder`, sorted; a near miss (`.yml`, `.YAML`) is a problem.

    Such a file is never silently ignored: it is reported with the fix (rename it), and what
    it describes is not loaded until then. A missing folder holds no files.
    """
    try:
        entries = sorted(folder.iterdir())
    except FileNotFoundError:
        return []
    except OSError as exc:
        problems.add(folder, WHOLE_FILE, f"cannot list the folder ({exc.strerror}); check it")
        return []
    found = []
    for entry in entries:
        if entry.suffix == ".yaml":
            found.append(entry)
        elif entry.suffix.lower() in (".yaml", ".yml"):
            problems.add(
                entry,
                WHOLE_FILE,
                f"only files ending in .yaml are read, so this one is not; rename it to "
                f"{entry.stem}.yaml (or move it out of {folder.name}/)",
            )
    return found


def read_yaml(file: Path, problems: Problems) -> Doc | None:
    """Read one configuration file into a Doc, or report why not and return None.

    Bounds: at most `yamlsafe.MAX_FILE_BYTES` bytes, UTF-8, a regular file, and the node graph
    bounds of `worker.config.yamlsafe`. The top level must be a mapping.
    """
    text = _read_text(file, problems)
    if text is None:
        return None
    try:
        node, data = yamlsafe.load(text)
    except yamlsafe.LimitError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
        path = dotted(exc.path)
        if path:
            problems.add(file, path, f"{exc.problem}", line)
        else:
            column = exc.problem_mark.column + 1 if exc.problem_mark is not None else 0
            problems.add(file, f"line {line}, column {column}", f"{exc.problem}")
        return None
    except yaml.YAMLError as exc:
        _syntax_problem(file, text, exc, problems)
        return None
    if not isinstance(data, dict):
        problems.add(
            file, "(top level)", "the file must hold a mapping (key: value lines) at the top"
        )
        return None
    return Doc(file, data, node)


class NotARegularFile(OSError):
    """The path names a folder, a named pipe or a device, not a file."""


def read_regular(path: Path | str, limit: int) -> bytes:
    """At most `limit` + 1 bytes of the regular file at `path` (more means: too large).

    Opened without blocking, so a named pipe cannot stall the worker; raises
    NotARegularFile for anything but a regular file, OSError when it cannot be read.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotARegularFile(errno.EINVAL, "not a regular file", str(path))
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read(limit + 1)
    finally:
        os.close(fd)


def _read_text(file: Path, problems: Problems) -> str | None:
    try:
        raw = read_regular(file, yamlsafe.MAX_FILE_BYTES)
    except NotARegularFile:
        problems.add(file, WHOLE_FILE, "not a regular file; put a YAML file here")
        return None
    except OSError as exc:
        problems.add(file, WHOLE_FILE, f"cannot read the file ({exc.strerror}); check it exists")
        return None
    if len(raw) > yamlsafe.MAX_FILE_BYTES:
        problems.add(
            file,
            WHOLE_FILE,
            f"the file is larger than {yamlsafe.MAX_FILE_BYTES // 1024} KiB, the limit for a "
            "configuration file; check it is the right file, or split the mapping",
        )
        return None
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        problems.add(
            file,
            f"line {line}, column {column}",
            f"the file is not UTF-8 text (byte 0x{raw[exc.start]:02X} cannot be read); "
            "save it as UTF-8",
        )
        return None


def _syntax_problem(file: Path, text: str, exc: yaml.YAMLError, problems: Problems) -> None:
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        problems.add(
            file,
            f"line {line}, column {column}",
            f"the character U+{exc.character:04X} is not allowed in YAML; remove it "
            "(or save the file as plain UTF-8 text)",
        )
        return
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else WHOLE_FILE
    what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context, opened = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and opened is not None and (mark is None or opened.line != mark.line):
        # An unclosed bracket or quote is found lines later: say where it was opened.
        what += f", {context} that starts at line {opened.line + 1}, column {opened.column + 1}"
    problems.add(file, where, f"YAML syntax error: {what}; fix the syntax at that spot")


def line_of(
    node: yaml.Node | None,
    path: tuple[str | int, ...],
    index: Index | None = None,
) -> int | None:
    """The 1-based line of `path` inside a composed YAML tree, as near as it exists.

    A mapping entry is found on the line of its key: a block value starts a line later.
    `index` (see `Index`, filled as needed) makes each step a dictionary look-up: pass the
    same dict for every path of one tree (as `Doc.line_of` does), so locating many problems
    in a large file stays linear, each mapping's keys read once, instead of a scan of the
    keys per problem.
    """
    keys = index if index is not None else {}
    found, mark = node, (node.start_mark if node is not None else None)
    for part in path:
        if isinstance(found, yaml.MappingNode):
            by_text = keys.get(id(found))
            if by_text is None:
                by_text = {}
                for k, v in found.value:
                    by_text.setdefault(str(k.value), (k, v))
                keys[id(found)] = by_text
            key, nxt = by_text.get(str(part), (None, None))
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
    """Validate a read file against `model`; report each error at its path and line."""
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        seen: set[tuple[str, str]] = set()
        errors = exc.errors()
        for err in errors:
            if err["type"] == "too_short" and _has_deeper(err["loc"], errors):
                continue  # "at least 1 item" only because its items were refused: say why
            loc = tuple(
                p
                for p in err["loc"]
                if not str(p).startswith(("function-", "tagged-")) and p != "[key]"
            )
            loc = _as_written(doc.data, tuple(p for p in loc if p not in _UNION_MEMBERS))
            path = dotted(loc) or "(top level)"
            message = _explain(err)
            if (path, message) not in seen:
                seen.add((path, message))
                problems.add(doc.file, path, message, doc.line_of(loc))
        return None


def _has_deeper(loc: tuple[Any, ...], errors: list[Any]) -> bool:
    return any(len(e["loc"]) > len(loc) and e["loc"][: len(loc)] == loc for e in errors)


_UNION_MEMBERS = ("Period", "SettingPeriod", "str", "int", "none")


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
    if "input" in err and kind not in ("model_type", "dict_type", "value_error"):
        return f"{message} (got {short(err['input'])})"
    return message
