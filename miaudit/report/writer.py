"""Write a complete report (``report.json``, ``scores.npz``, ``report.html``) or none of it.

An audit can take hours; its report must never be left half-written, and a failed rerun must
not destroy the report of the previous run. The strategy:

1. Build everything that can fail for reasons of content (report dictionary, HTML, figures)
   in memory first.
2. Write the three files into a fresh staging directory *next to* ``out_dir``, so it is on the
   same filesystem and a rename is atomic, and flush them to disk.
3. Publish:

   - ``out_dir`` does not exist: rename the staging directory to ``out_dir``. One atomic step:
     readers see either no report or the whole new one.
   - ``out_dir`` exists (an older report, perhaps with the user's own files beside it, so the
     directory itself cannot be swapped): ``os.replace`` each file into place. Each file is
     swapped atomically; the old version of each is first hard-linked (or copied) into the
     staging directory, and if any replacement fails the files already replaced are put back,
     so an error leaves the older report as it was. Only a crash of the whole machine between
     two of the three renames could leave a mix of old and new files.

4. The staging directory is removed whatever happens.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from pathlib import Path

from miaudit.evaluation.results import AuditResult
from miaudit.report.html_report import render_html
from miaudit.report.json_report import build_report_dict, write_scores_npz

__all__ = ["REPORT_FILES", "write_report"]

#: Role -> file name of each file of a report.
REPORT_FILES = {"json": "report.json", "scores": "scores.npz", "html": "report.html"}


def _fsync(path: Path) -> None:
    """Flush a written file to disk, so a rename never publishes an empty file after a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_staging_dir(out_dir: Path) -> Path:
    """A new hidden directory beside ``out_dir``.

    ``os.mkdir`` rather than ``tempfile.mkdtemp``: mkdtemp creates mode 0700, and when the
    staging directory becomes ``out_dir`` the report would be unreadable to everyone else.
    ``os.mkdir`` honours the user's umask like any other directory.
    """
    for _ in range(100):
        candidate = out_dir.parent / f".{out_dir.name}.{secrets.token_hex(4)}.tmp"
        try:
            os.mkdir(candidate)
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"could not create a staging directory beside {out_dir}")


def _publish_into_existing(staging: Path, out_dir: Path) -> None:
    """Replace the report files in ``out_dir`` one by one, rolling back on any error."""
    backups: dict[str, Path | None] = {}
    try:
        for name in REPORT_FILES.values():
            dest = out_dir / name
            backup = None
            if dest.exists():
                backup = staging / f"{name}.previous"
                try:
                    os.link(dest, backup)
                except OSError:  # filesystems without hard links
                    shutil.copy2(dest, backup)
            backups[name] = backup
            os.replace(staging / name, dest)
    except BaseException:
        for name, backup in backups.items():
            dest = out_dir / name
            with contextlib.suppress(OSError):
                if backup is not None:
                    os.replace(backup, dest)
                elif not (staging / name).exists():  # ours was published: take it back
                    dest.unlink(missing_ok=True)
        raise


def write_report(result: AuditResult, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``report.json``, ``scores.npz`` and ``report.html`` into ``out_dir``, atomically.

    Parameters
    ----------
    result : AuditResult
        The audit to report.
    out_dir : path-like
        Directory of the report; it and its parents are created when missing. Files other
        than the three report files in it are left alone.

    Returns
    -------
    dict[str, Path]
        ``{"json": ..., "scores": ..., "html": ...}``, the paths written.

    Raises
    ------
    InvalidAuditInput
        When ``result`` cannot be reported (repeated attack names, misaligned scores); nothing
        is written then.
    """
    out_dir = Path(out_dir).absolute()
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"report directory {out_dir} exists and is not a directory")
    report = build_report_dict(result)
    report_json = json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    html = render_html(result, report)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = _make_staging_dir(out_dir)
    try:
        (staging / REPORT_FILES["json"]).write_text(report_json, encoding="utf-8")
        write_scores_npz(staging / REPORT_FILES["scores"], result)
        (staging / REPORT_FILES["html"]).write_text(html, encoding="utf-8")
        for name in REPORT_FILES.values():
            _fsync(staging / name)
        published = False
        if not out_dir.exists():
            try:
                os.rename(staging, out_dir)
                published = True
            except OSError:
                # Someone created out_dir meanwhile; fall back to file-by-file replacement.
                if not out_dir.is_dir():
                    raise
        if not published:
            _publish_into_existing(staging, out_dir)
    except Exception as error:
        from miaudit.atomic import disk_full, disk_full_error

        if not disk_full(error, staging):
            raise
        need = len(report_json) + len(html) + result.is_member.size * 8 * (len(result.scores) + 1)
        raise disk_full_error(
            out_dir.parent,
            "for the report (--out)",
            advice="nothing was written; free some space or choose another --out",
            need_bytes=need,
        ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {role: out_dir / name for role, name in REPORT_FILES.items()}
