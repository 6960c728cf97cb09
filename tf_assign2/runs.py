"""Run directories: naming (never overwritten), one owner at a time, atomic file writes, reading a finished run."""

import contextlib
import csv
import datetime
import fcntl
import hashlib
import json
import math
import os
import shutil
import socket
import tempfile
from pathlib import Path

from tf_assign2.errors import UsageError


def run_name(config, model_label):
    """``<task>-<optimizer>-lr<lr>-<timestamp>``; MNIST runs also name the model (``mnist-lstm128-adam-...``)."""
    what = config.optimizer
    if config.task == "mnist":
        what = f"{model_label}-{config.optimizer}"
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{config.task}-{what}-lr{config.lr:g}-{stamp}"


def new_run_dir(config, model_label):
    """Create a fresh run directory; an existing one is never reused (a suffix is added)."""
    root = Path(config.runs_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--runs-dir {root}: cannot create it ({e.strerror or e})") from None
    if not os.access(root, os.W_OK):
        raise UsageError(f"--runs-dir {root}: not writable")
    return _fresh_dir(root, run_name(config, model_label), "--runs-dir ")


def _fresh_dir(parent, base, what):
    """Make ``parent/base`` (or ``base-1``, ``base-2`` ... if taken) and return it."""
    for i in range(1000):
        path = Path(parent) / (base if i == 0 else f"{base}-{i}")
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
        except OSError as e:
            raise UsageError(f"{what}{parent}: cannot create {path.name} ({e.strerror or e})") from None
    raise UsageError(f"{what}{parent}: too many folders named {base}")


def write_atomic(path, text):
    """Write text to ``path`` through a temp file + rename, so readers never see half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path, obj):
    """``obj`` as strict JSON (NaN and infinities, which JSON has no words for, written as null), atomically."""
    text = json.dumps(_finite(obj), indent=2, sort_keys=True, default=_jsonable, allow_nan=False)
    write_atomic(path, text + "\n")


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # a NumPy scalar
        return _finite(value.item())
    return value


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (tuple, set)):
        return list(value)
    return str(value)


def read_json(path, expect=dict):
    """A JSON file of ours, which must hold an ``expect`` (an object by default); else one clear error."""
    from tf_assign2.files import read_bytes

    try:
        value = json.loads(read_bytes(path, ""))
    except ValueError as e:  # bad UTF-8 and bad JSON
        raise UsageError(f"{path}: cannot read JSON ({e})") from None
    if expect is not None and not isinstance(value, expect):
        raise UsageError(f"{path}: damaged (expected a JSON {expect.__name__}, found {type(value).__name__})")
    return value


def is_run_dir(path):
    """A folder with a config.json (of whatever kind: reading it says if it is not a file)."""
    return os.path.lexists(Path(path) / "config.json")


def timestamped_subdir(parent, prefix):
    """A new ``<prefix>-<timestamp>`` folder under ``parent`` (evaluations, visualisations)."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return _fresh_dir(parent, f"{prefix}-{stamp}", "")


def remove_tree(path):
    """Remove a folder this process made and must not leave half-written (a failed start)."""
    shutil.rmtree(path, ignore_errors=True)


LOCK_FILE = ".lock"


@contextlib.contextmanager
def made_or_left_alone(folder, what="--out "):
    """Make ``folder`` (with its parents) for the block; if the block fails and ``folder`` was made here and
    holds nothing but its lock file, remove it again: a refused command leaves nothing behind."""
    folder = Path(folder)
    first_made = first_missing(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"{what}{folder}: cannot create it ({e.strerror or e})") from None
    try:
        yield folder
    except BaseException:
        remove_if_empty(first_made)
        raise


def first_missing(folder):
    """The outermost folder of ``folder``'s path that does not exist yet (None if it exists)."""
    folder, missing = Path(folder).absolute(), None
    while not folder.exists():
        folder, missing = folder.parent, folder
    return missing


def remove_if_empty(folder):
    """Remove ``folder`` if it holds nothing but folders and lock files: what a refused command made."""
    if folder is None or not folder.is_dir():
        return
    if all(p.is_dir() or p.name == LOCK_FILE for p in folder.rglob("*")):
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def owned(folder, what="folder"):
    """Hold ``folder`` for this process: a second process (a resume, the same tune or sweep command
    twice) is refused in one line naming the holder.

    The lock is the kernel's ``flock`` on ``folder/.lock``, so it goes with its process: the lock
    of a killed process is free again at once, and the next command simply takes it over. The
    file keeps the holder's PID and host for the message.
    """
    path = Path(folder) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:
        raise UsageError(f"{folder}: cannot lock this {what} ({e.strerror or e})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise UsageError(f"{folder}: this {what} is in use by {holder}; wait for it to finish or stop it") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the flock


def read_history(path):
    """history.csv -> {column: [floats]}."""
    path = Path(path)
    if not path.is_file():
        return {}
    with path.open() as f:
        rows = list(csv.DictReader(f))
    columns = {k: [_number(r[k]) for r in rows] for k in (rows[0] if rows else {})}
    # Without validation data CSVLogger still writes val_* columns, filled with "NA": drop them.
    return {k: v for k, v in columns.items() if not all(math.isnan(x) for x in v)}


def _number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")


# --------------------------------------------------------------------------- a run's backups


WEIGHTS, RANDOM_STATE, STATE = "model.weights.h5", "random_state.json", "state.json"


def epoch_folder(backup_dir, epoch):
    return Path(backup_dir) / f"epoch-{epoch:04d}"


def backup_epochs(backup_dir):
    """The epochs backed up in ``backup_dir``, oldest first (intact or not)."""
    backup_dir = Path(backup_dir)
    if not backup_dir.is_dir():
        return []
    names = (p.name for p in backup_dir.iterdir() if p.is_dir())
    return sorted(int(n[6:]) for n in names if n.startswith("epoch-") and n[6:].isdigit())


def latest_intact(backup_dir):
    """The newest backed-up epoch whose files are complete and match their recorded SHA-256; 0 if none."""
    for epoch in reversed(backup_epochs(backup_dir)):
        folder = epoch_folder(backup_dir, epoch)
        try:
            state = json.loads((folder / STATE).read_text())
            intact = state["epoch"] == epoch and all(sha256(folder / n) == h for n, h in state["sha256"].items())
        except (OSError, ValueError, KeyError, TypeError):
            intact = False
        if intact:
            return epoch
    return 0


# Settings that may change between a backup and its resume: where things are and what is printed.
FREE_ON_RESUME = ("runs_dir", "quiet", "verbose", "data_dir", "tfds_data_dir", "source")


def check_settings_unchanged(backup_dir, epoch, settings, where):
    """Refuse to resume from ``epoch``'s backup under other settings than it was written with (a
    config.json edited since: another model, another dataset, fewer epochs), naming what changed."""
    if not epoch:
        return
    try:
        recorded = json.loads((epoch_folder(backup_dir, epoch) / STATE).read_text()).get("settings")
    except (OSError, ValueError):
        return
    if not isinstance(recorded, dict):  # a backup from before settings were recorded
        return
    from tf_assign2.config import with_new_defaults

    recorded = with_new_defaults(recorded)  # a setting added since the backup: it ran with the default
    changed = [f"{k}: {recorded.get(k)!r} -> {settings.get(k)!r}" for k in sorted(set(recorded) | set(settings))
               if k not in FREE_ON_RESUME and recorded.get(k) != settings.get(k)]
    if changed:
        raise UsageError(f"{where}: changed since the run backed up epoch {epoch} ({', '.join(changed[:3])}"
                         f"{' ...' if len(changed) > 3 else ''}); put it back as it was, or start a new run")


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
