"""Progress of `run --once` on a terminal: per pair and rule, rows done of rows eligible.

An EventBus subscriber like the others: it reads run events and writes to a stream (stderr on
a terminal; the CLI leaves it out otherwise, so pipes and log collectors see no control
characters). The line of the rule in progress is rewritten in place after each batch; a rule
ends with its final line. Rows done counts the rule's own table (the eligible rows), not the
dependents deleted with them.
"""

from __future__ import annotations

from typing import IO

from worker.events import BatchApplied, Event, RuleEvaluated, RunFinished


class Progress:
    """Writes `customer × product  rule: done/eligible rows` lines to `stream`."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._eligible: dict[tuple[str, str], int] = {}  # (run_id, rule) → eligible at start
        self._done: dict[tuple[str, str], int] = {}
        self._open: tuple[str, str] | None = None  # the rule whose line is not ended yet
        self._names: dict[str, str] = {}  # run_id → "customer × product"

    def __call__(self, event: Event) -> None:
        match event:
            case RuleEvaluated() if (event.run_id, event.rule) not in self._eligible:
                self._end_line()
                key = (event.run_id, event.rule)
                self._names[event.run_id] = f"{event.customer} × {event.product}"
                self._eligible[key] = event.eligible
                self._done[key] = 0
                self._show(key, final=event.eligible == 0)
            case BatchApplied():
                key = (event.run_id, event.rule)
                if key in self._done:
                    self._done[key] += event.rows.get(event.table, 0)
                    self._show(key, final=self._done[key] >= self._eligible[key])
            case RunFinished():
                self._end_line()
                self._names.pop(event.run_id, None)
            case _:
                pass

    def _show(self, key: tuple[str, str], *, final: bool) -> None:
        run_id, rule = key
        text = (
            f"{self._names.get(run_id, '')}  {rule}: {self._done[key]}/{self._eligible[key]} row(s)"
        )
        self._stream.write(f"\r{text}")
        if final:
            self._stream.write("\n")
            self._open = None
        else:
            self._open = key
        self._stream.flush()

    def _end_line(self) -> None:
        if self._open is not None:
            self._stream.write("\n")
            self._stream.flush()
            self._open = None
