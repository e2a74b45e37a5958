"""`RunDirectory`: a training run's workdir, locked, with its config and phase on record.

A run goes through three phases, recorded in `<workdir>/run.json`:

    training   epoch-end checkpoints in <workdir>/checkpoints/ (resume from the newest)
    fitted     `fit` is over; <workdir>/checkpoints/final.npz holds the weights to
               export (a rerun only re-evaluates and re-exports)
    published  the export is in place; `run.json` names it (a rerun starts afresh)

The record keeps the run's resolved config, so a rerun that would resume with a
different model, data or optimizer is refused instead of silently mixing the two.
"""

from __future__ import annotations

import dataclasses
import errno
import glob
import json
import logging
import os
import shutil
import uuid

from kerasdl.tasks.exit_codes import UsageError

logger = logging.getLogger(__name__)

RECORD = "run.json"
LOCK = ".lock"
CHECKPOINTS = "checkpoints"
FINAL_CHECKPOINT = "final.npz"


_ABSENT = object()  # a recorded setting that is missing and has no default


class WorkdirBusyError(UsageError):
    """Another live process holds the workdir's lock."""


class ConfigMismatchError(UsageError):
    """A rerun would resume a run started with different settings."""


def resumable_fields(config) -> set[str]:
    """Names of `config`'s fields that may change when a run resumes.

    A field is resumable when its dataclass metadata says `resume=True` (e.g.
    `epochs`, `verbose`, `output`): it moves where or how long the run goes, never
    what the trained weights mean.
    """
    return {
        f.name for f in dataclasses.fields(config) if f.metadata.get("resume", False)
    }


class RunDirectory:
    """A workdir for one training run at a time.

    `open()` makes the directory (checking it is a writable directory), takes an
    exclusive lock (`fcntl.flock`, released by the kernel when the process dies, so a
    killed run never leaves a stale lock) and removes temporary files left by killed
    writes. `check_resume(config)` compares the settings of a run in progress with
    the recorded ones.

    Args:
        path: the workdir.
        recipe: the recipe's name, recorded and compared.
        restart: discard a run in progress (checkpoints and record) instead of
            resuming it. Defaults to `False`.
        writer: whether this process writes (locks, records, cleans). `False` for
            the non-chief workers of a multi-worker run, which share the chief's
            workdir and only read it. Defaults to `True`.

    Example:

    ```python
    with RunDirectory("runs/lenet/digits", recipe="lenet") as run_dir:
        run_dir.check_resume(config)
        ...
        run_dir.mark_published("saved_models/lenet/3")
    ```
    """

    def __init__(self, path, *, recipe: str, restart: bool = False, writer=True):
        self.path = os.fspath(path)
        self.recipe = recipe
        self.restart = bool(restart)
        self.writer = bool(writer)
        self._lock_file = None
        self._opened = False

    # ------------------------------------------------------------------ paths
    @property
    def checkpoints(self) -> str:
        return os.path.join(self.path, CHECKPOINTS)

    @property
    def final_checkpoint(self) -> str:
        return os.path.join(self.checkpoints, FINAL_CHECKPOINT)

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    # --------------------------------------------------------------- lifecycle
    def open(self) -> RunDirectory:
        if self._opened:
            return self
        self._opened = True
        if not self.writer:
            return self
        check_writable_directory(self.path, "--workdir")
        self._lock()
        self.remove_stale_files()
        if self.restart:  # Whatever the record holds, even when it is corrupt.
            if os.path.exists(self.file(RECORD)):
                logger.info("--restart: discarding the run in %s", self.path)
            self.reset()
        elif self.read_record().get("phase") == "published":
            self.reset()
        return self

    def close(self) -> None:
        self._opened = False
        if self._lock_file is not None:
            self._lock_file.close()  # Releases the flock.
            self._lock_file = None

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc_info):
        self.close()

    def _lock(self) -> None:
        import fcntl

        lock_path = self.file(LOCK)
        lock_file = open(lock_path, "a+")  # noqa: SIM115 -- held until close().
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.seek(0)
            owner = lock_file.read().strip() or "unknown"
            lock_file.close()
            raise WorkdirBusyError(
                f"workdir {self.path} is in use by another run (pid {owner}); wait "
                "for it to finish or pass another --workdir"
            ) from None
        lock_file.seek(0)
        lock_file.truncate()
        lock_file.write(f"{os.getpid()}\n")
        lock_file.flush()
        self._lock_file = lock_file

    def remove_stale_files(self) -> list[str]:
        """Removes temporary files of killed writes (`.tmp-*`) in the workdir.

        Safe because the caller holds the lock: no live writer can own them.
        Returns the paths removed.
        """
        removed = []
        for pattern in (".tmp-*", os.path.join(CHECKPOINTS, ".tmp-*")):
            for stale in glob.glob(os.path.join(self.path, pattern)):
                _remove(stale)
                removed.append(stale)
        if removed:
            logger.info(
                "Removed %d temporary file(s) of an interrupted run.", len(removed)
            )
        return removed

    def reset(self) -> None:
        """Forgets the previous run: its checkpoints and its record (logs are rewritten)."""
        if os.path.isdir(self.checkpoints):
            shutil.rmtree(self.checkpoints)
        record = self.file(RECORD)
        if os.path.exists(record):
            os.remove(record)

    # ------------------------------------------------------------------ record
    def read_record(self) -> dict:
        """`run.json` as a dict (`{}` when missing); `UsageError` when unreadable."""
        try:
            with open(self.file(RECORD)) as f:
                record = json.load(f)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            raise UsageError(
                f"{self.file(RECORD)} is unreadable ({error}); pass --restart to start "
                "this workdir afresh"
            ) from None
        sections = ("config", "fit")
        if not isinstance(record, dict) or any(
            not isinstance(record.get(key, {}), dict) for key in sections
        ):
            raise UsageError(
                f"{self.file(RECORD)} is not a run record (expected a JSON object "
                "whose 'config' and 'fit' are objects); pass --restart to start this "
                "workdir afresh"
            )
        return record

    def write_record(self, **fields) -> dict:
        """Updates `run.json` atomically with `fields`; returns the new record."""
        record = {**self.read_record(), **fields}
        if not self.writer:
            return record
        tmp = self.file(f".tmp-{uuid.uuid4().hex}.json")
        try:
            with open(tmp, "w") as f:
                json.dump(record, f, indent=2, sort_keys=True, default=str)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.file(RECORD))
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return record

    @property
    def phase(self) -> str:
        """`"new"`, `"training"`, `"fitted"` or `"published"`."""
        phase = self.read_record().get("phase", "new")
        if phase == "fitted" and not os.path.exists(self.final_checkpoint):
            return "training"  # The final weights are gone: resume from the epochs.
        return phase

    def check_resume(self, config, recipe: str | None = None) -> None:
        """Refuses to resume a run started with other settings; records `config`.

        Fields marked resumable (`resumable_fields`) may differ; any other
        difference raises `ConfigMismatchError` naming every differing field.
        """
        current = _plain(dataclasses.asdict(config))
        record = self.read_record()
        if self.phase in ("training", "fitted") and "config" in record:
            allowed = resumable_fields(config)
            saved = record["config"]
            differing = sorted(
                name
                for name in set(saved) | set(current)
                if name not in allowed and saved.get(name) != current.get(name)
            )
            if record.get("recipe") not in (None, recipe or self.recipe):
                differing.insert(0, "recipe")
            if differing:
                details = ", ".join(
                    _describe(name, record, saved, current, recipe or self.recipe)
                    for name in differing
                )
                raise ConfigMismatchError(
                    f"workdir {self.path} holds a {record.get('phase')} run with other "
                    f"settings ({details}); rerun with the same flags to resume it, "
                    "or pass --restart (or another --workdir) to start a new run"
                )
        self.write_record(
            recipe=recipe or self.recipe,
            config=current,
            phase=self.phase if self.phase in ("training", "fitted") else "training",
        )

    def holds_published(
        self, config, recipe: str | None = None, ignore=("output", "verbose")
    ) -> bool:
        """Whether the workdir holds a published run of `config` with its final
        weights (a run that `open` would start afresh).

        Every field of `config` but those in `ignore` (where the run exported,
        how it printed) must equal the recorded one. A field the record lacks
        (added to the config after that run) counts as its default, which keeps
        the behaviour of before the field existed.
        """
        record = self.read_record()
        saved = record.get("config") or {}
        current = _plain(dataclasses.asdict(config))
        defaults = {
            f.name: _plain(f.default)
            for f in dataclasses.fields(config)
            if f.default is not dataclasses.MISSING
        }
        return (
            self.phase == "published"
            and record.get("recipe") == (recipe or self.recipe)
            and all(
                saved.get(name, defaults.get(name, _ABSENT)) == value
                for name, value in current.items()
                if name not in ignore
            )
            and set(saved) <= set(current)
            and os.path.exists(self.final_checkpoint)
        )

    def mark_fitted(self, **details) -> None:
        self.write_record(phase="fitted", fit=details)

    def mark_published(self, export_path: str | None) -> None:
        self.write_record(phase="published", export_path=export_path)


def check_writable_directory(path, flag: str) -> str:
    """Creates `path` if needed and checks a file can be written in it.

    Raises `UsageError` naming `flag` when `path` is empty, is a file, or cannot be
    created or written. Returns `path`.
    """
    path = os.fspath(path)
    if not path.strip():
        raise UsageError(f"{flag} must be a directory path; got an empty string")
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"{flag} {path} is a file; expected a directory")
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".tmp-write-probe-{uuid.uuid4().hex}")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as error:
        reason = error.strerror or str(error)
        if error.errno == errno.ENOSPC:
            reason = "no space left on the device"
        raise UsageError(f"{flag} {path} is not writable: {reason}") from None
    return path


def check_free_space(path, needed_bytes: int, what: str) -> None:
    """Raises `UsageError` when the filesystem of `path` has less than `needed_bytes`."""
    free = shutil.disk_usage(path).free
    if free < needed_bytes:
        raise UsageError(
            f"not enough free space in {path} for {what}: about "
            f"{_megabytes(needed_bytes)} needed, {_megabytes(free)} free"
        )


def _megabytes(count: int) -> str:
    return f"{count / 2**20:,.1f} MiB"


def _remove(path) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


def _plain(value):
    """`value` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(value, default=str))


def _describe(name, record, saved, current, recipe) -> str:
    if name == "recipe":
        return f"recipe: {record.get('recipe')!r} then, {recipe!r} now"
    flag = "--" + name.replace("_", "-")
    return f"{flag}: {saved.get(name)!r} then, {current.get(name)!r} now"
