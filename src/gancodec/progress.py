"""The progress bar of the CLI and of bulk runs: rich's, drawn only on a terminal."""

from __future__ import annotations

import sys


def progress_bar(enabled: bool = True, *, stderr: bool = True):
    """A transient rich progress (its tasks: description, bar, done of total, time left); a no-op
    when ``enabled`` is false or stderr is not a terminal (logs and CI stay clean). ``stderr``:
    drawn there (bulk runs), else on rich's default console (the CLI, whose per-file lines print
    through ``progress.console``)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=Console(stderr=True) if stderr else None, transient=True,
                    disable=not enabled or not sys.stderr.isatty())
