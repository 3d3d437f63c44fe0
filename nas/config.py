"""Configuration of one search run, filled from the command line and passed down unchanged, and what the
command lines share: their help format, path options, the error a user can fix, and how a file is written."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only where it says something: not None, an empty tuple, a flag's False, or
    where the help text already explains it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        unset = action.default is None or action.default is False or action.default in ((), [])
        if unset or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def path_arg(text: str) -> Path:
    """argparse type of a path option: an empty path, which Path reads as '.' (an unset shell
    variable, say), is refused rather than taken as the current folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"an empty path{'' if not text else ' (blanks only)'}: give a file or "
                                         "folder name")
    path = Path(text)
    # Path.is_file() and its kin raise on these (ENAMETOOLONG) instead of answering False.
    long = next((part for part in path.parts if len(os.fsencode(part)) > 255), None)
    if long is not None or len(os.fsencode(text)) >= 4096:
        raise argparse.ArgumentTypeError(f"{'the name ' + repr(long[:40] + '...') if long else 'the path'} is too "
                                         f"long for a file system ({'255' if long else '4095'} bytes at most)")
    return path


def file_arg(text: str) -> Path:
    """argparse type of an output *file* option: `path_arg`, and a trailing '/' (which Path drops, so
    that `--json out/` would write a file named `out`) is refused."""
    path = path_arg(text)
    if text.endswith(("/", os.sep)):
        raise argparse.ArgumentTypeError(f"{text!r} ends in '/', so it names a folder: give a file's name, "
                                         f"in that folder or elsewhere")
    return path


def setup_command_line() -> None:
    """What a command line's `__main__` sets up for the process, before `main`.

    SIGTERM (`kill`, a scheduler's time limit) raises KeyboardInterrupt, as a Ctrl-C does, so that it
    gets a Ctrl-C's clean-up and one line (nothing half-written, Ray shut down) where Python's default
    ends the process on the spot. And a character the terminal cannot encode (the '±' of the summaries
    under LANG=C) is printed as '?', where it raised UnicodeEncodeError after the results were written.
    """
    # Not where the parent ignores SIGTERM (`trap '' TERM`), as Python leaves an ignored SIGINT alone.
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    # stdout only: stderr already escapes what it cannot encode (backslashreplace), which keeps a
    # non-ASCII path in an error line legible.
    if hasattr(sys.stdout, "reconfigure"):   # not where a caller replaced it with a plain file-like object
        sys.stdout.reconfigure(errors="replace")


class UsageError(Exception):
    """Bad input a user can fix: reported as one line on stderr with exit status 2."""


def probe_writable(folder: Path | str) -> None:
    """Create and remove a temporary file in `folder`, raising OSError where it takes none: checked
    before minutes of work, not after. tempfile's name, which starts with '.' and ends in no suffix,
    is never taken for a table."""
    import tempfile

    with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
        pass


def check_output_folder(path: Path | None) -> None:
    """UsageError unless `path` is None or a file name in an existing folder: said before the work, not after."""
    if path is not None and not path.parent.resolve().is_dir():
        what = "a file, not a folder" if path.parent.resolve().exists() else "not an existing folder"
        raise UsageError(f"cannot write {path}: {path.parent} is {what}")
    if path is not None and path.is_dir():
        raise UsageError(f"cannot write {path}: it is a folder; give a file name")
    if path is not None:  # a folder that refuses new files: said now, not after minutes of work
        try:
            probe_writable(path.parent)
        except OSError as exc:
            raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def write_atomically(path: Path | str, write: Callable[[Path], object]) -> Path:
    """`write(tmp)` to a temporary name beside `path`, then rename it to `path`: a reader never sees half
    a file, and a failure or a Ctrl-C leaves the old file (or none) and no temporary one. The temporary
    name starts with '.' and ends in '.tmp', so no folder reader takes it for a table or an image; and
    it is not tempfile's, whose files are private (0600): this one follows the umask."""
    path = Path(path)
    # At most 215 bytes of the name: with the 14 added, a 255-byte name (the file system's most) still fits.
    tmp = path.with_name(f".{os.fsdecode(os.fsencode(path.name)[:200])}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


#: 10,000 takes 2 GiB and 25 s for two NAS-Bench-201 generations on a 2-core VM.
MAX_POP_SIZE = 10_000


@dataclass(frozen=True)
class SearchConfig:
    device: str = "gold_6226"
    space: str = "nasbench201"
    dataset: str | None = None          # None: the space's default dataset
    pop_size: int = 50
    generations: int = 60
    seed: int = 0
    samples: int = 3                    # target measurements the predictor adapts from
    out: Path = Path("results")
    workers: int | None = None          # local Ray workers for expensive evaluations; None = one per CPU
    ray_address: str | None = None
    profiles_dir: Path | None = None
    tables: tuple[Path, ...] = ()       # user latency tables: the predictor's initial set
    leave_out: tuple[str, ...] = ()     # devices of those tables it must not learn from (a benchmark's own)
    progress: bool = True

    def cautions(self) -> list[str]:
        """What is accepted but likely not meant, for warnings."""
        if self.workers is not None and self.ray_address:
            return [f"--workers {self.workers} is ignored with --ray-address: the cluster's CPUs are the workers"]
        if self.workers is not None and self.workers > (os.cpu_count() or 1):
            return [f"--workers {self.workers} exceeds this machine's {os.cpu_count()} CPUs: where evaluations run on "
                    "Ray (a proxy objective), the workers will contend for them and the search run slower"]
        return []

    def validate(self) -> None:
        if self.ray_address is not None and not self.ray_address.strip():  # was taken as no address at all
            raise UsageError("--ray-address is empty: give HOST:PORT of a running cluster, or auto")
        if self.pop_size <= 0:
            raise UsageError(f"--pop-size must be a positive integer, got {self.pop_size}")
        if self.pop_size > MAX_POP_SIZE:
            # pymoo's duplicate elimination holds a pop x pop distance matrix: 100,000 would need 75 GiB.
            raise UsageError(f"--pop-size must be at most {MAX_POP_SIZE}, got {self.pop_size}")
        if self.generations <= 0:
            raise UsageError(f"--generations must be a positive integer, got {self.generations}")
        if self.samples <= 0:
            raise UsageError(f"--samples must be a positive integer, got {self.samples}")
        if self.workers is not None and self.workers <= 0:
            raise UsageError(f"--workers must be a positive integer, got {self.workers}")
        if self.seed < 0:
            raise UsageError(f"--seed must be a non-negative integer, got {self.seed}")
