"""Reading a file a user named: only a regular file is read, and nothing waits for a writer.

``open()`` on a named pipe (FIFO) blocks until something writes into it: a FIFO given as a config,
sweep or search-space file, as an image of the data folder or as an exported model hung a command
forever, and ``Path.is_file()`` called it missing. ``read_bytes`` opens without blocking, then
refuses anything that is not a regular file, naming what it is.
"""

import errno
import os
import stat

from tf_assign2.errors import UsageError

KINDS = {stat.S_IFIFO: "a named pipe (FIFO)", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
         stat.S_IFBLK: "a block device", stat.S_IFDIR: "a folder", stat.S_IFLNK: "a symbolic link"}


def kind_of(mode):
    """What a file of ``st_mode`` is, in words."""
    return KINDS.get(stat.S_IFMT(mode), "not a regular file")


def describe_error(error):
    """Why a path cannot be read, in words (a symbolic link that loops, a missing file ...)."""
    if error.errno == errno.ELOOP:
        return "a symbolic link that leads to itself"
    return error.strerror or str(error)


def read_bytes(path, what, limit=None):
    """The bytes of the regular file ``path`` (at most ``limit`` + 1 of them where ``limit`` is given);
    a one-line ``UsageError`` naming ``what`` and the path otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opens at once instead of waiting for a writer
    except OSError as e:
        check_regular(path, what)  # a socket, a device: say what it is
        raise UsageError(f"{what}{path}: cannot read ({describe_error(e)})") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise UsageError(f"{what}{path}: {kind_of(mode)}, not a file; expected a regular file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read() if limit is None else f.read(limit + 1)
    except OSError as e:
        raise UsageError(f"{what}{path}: cannot read ({describe_error(e)})") from None
    finally:
        os.close(fd)


def check_regular(path, what):
    """Refuse ``path`` in one line unless it is a regular file (for files another library opens)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        raise UsageError(f"{what}{path}: cannot read ({describe_error(e)})") from None
    if not stat.S_ISREG(mode):
        raise UsageError(f"{what}{path}: {kind_of(mode)}, not a file; expected a regular file")


def check_tree(folder, what):
    """Refuse a folder holding anything but regular files and folders (a named pipe a reader would wait
    on, a socket, a symbolic link that loops): for a SavedModel, which TensorFlow reads file by file."""
    for root, folders, names in os.walk(folder):
        for name in names + folders:
            path = os.path.join(root, name)
            try:
                mode = os.stat(path).st_mode
            except OSError as e:
                raise UsageError(f"{what}{path}: cannot read ({describe_error(e)})") from None
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise UsageError(f"{what}{path}: {kind_of(mode)}, not a file; expected a regular file")
