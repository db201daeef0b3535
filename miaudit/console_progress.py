"""The command line's progress display: bars with ETA in a terminal, plain lines in a log.

Long steps report through callbacks (``on_epoch`` for the target's training, ``on_reference``
for each reference model, ``on_step`` for the attacks, shadow models and shadow-data
synthesis); this class turns them into what the output can show. In a
terminal, rich progress bars with the time remaining, removed when done; when the output is
a file or a pipe (CI logs, ``nohup``), one line per model and a line every tenth of the
target's epochs, each with its ETA, so a log says how far a run got. ``--quiet`` silences
both (the console is quiet).
"""

from __future__ import annotations

import time

from rich.text import Text

from miaudit.report.inert import terminal_text

__all__ = ["ProgressDisplay"]


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class ProgressDisplay:
    """Bars (terminal) or lines (log) for target epochs and reference models."""

    def __init__(self, console) -> None:
        self.console = console
        self.live = console.is_terminal and not console.quiet
        self._tasks: dict[str, int] = {}
        self._started: dict[str, float] = {}
        self._last_line: dict[str, int] = {}
        self._from_cache: dict[int, bool] = {}
        self._bars = None
        if self.live:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._bars = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn(
                    "{task.completed}/{task.total} {task.fields[unit]} {task.fields[detail]}"
                ),
                TimeRemainingColumn(),
                console=console,
                transient=True,
            )

    def __enter__(self) -> ProgressDisplay:
        if self._bars is not None:
            self._bars.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._bars is not None:
            self._bars.__exit__(*exc)

    def _step(self, key: str, label: str, done: int, total: int, unit: str, detail: str) -> None:
        now = time.perf_counter()
        if key not in self._started or done == 0:
            self._started[key] = now
            self._last_line[key] = -1  # the last tenth of ``total`` given a line
        if self._bars is not None:
            if key not in self._tasks:
                self._tasks[key] = self._bars.add_task(label, total=total, unit=unit, detail="")
            self._bars.update(
                self._tasks[key], completed=done, total=total, detail=terminal_text(detail)
            )
            return
        # Plain lines: the first step, then each tenth of the way passed (the last included).
        tenth = done * 10 // max(total, 1)
        if done == 0 or tenth <= self._last_line[key]:
            return
        self._last_line[key] = tenth
        elapsed = now - self._started[key]
        eta = f", about {_duration(elapsed / done * (total - done))} left" if done else ""
        self.console.log(
            Text(terminal_text(f"{label}: {done}/{total} {unit} {detail}".rstrip() + eta))
        )

    def step(self, what: str, done: int, total: int, info: dict) -> None:
        """``on_step`` of an audit: attacks, shadow models, synthesis."""
        if what == "shadow models":
            acc = info.get("test_accuracy")
            source = "cached" if info.get("cached") else f"{info.get('seconds', 0):.1f} s"
            detail = f"(last: test acc {acc:.3f}, {source})" if acc is not None else ""
            self._step(what, what, done, total, "models", detail)
        elif what == "attacks":
            self._step(what, "attacks", done, total, "done", f"(last: {info.get('attack', '')})")
        else:
            self._step(what, what, done, total, "records", "")

    def epochs(self, epoch: int, n_epochs: int, loss: float) -> None:
        """``on_epoch`` of the target's training."""
        self._step("target", "training the target", epoch, n_epochs, "epochs", f"loss {loss:.4f}")

    def models(self, done: int, total: int, info: dict) -> None:
        """``on_reference`` of a reference pool (or a self-audit's models)."""
        acc = info.get("test_accuracy")
        source = "cached" if info.get("from_cache") else f"{info.get('seconds', 0):.1f} s"
        detail = f"(last: test acc {acc:.3f}, {source})" if acc is not None else ""
        self._step("refs", "reference models", done, total, "models", detail)
        self._from_cache[info.get("model", done)] = bool(info.get("from_cache"))
        if done == total:  # a line that stays in a log, unlike the transient bar
            cached = sum(self._from_cache.values())
            self.console.log(
                Text(
                    f"{total} reference models ready: {cached} from the model cache, "
                    f"{total - cached} trained"
                )
            )
            self._from_cache.clear()
