"""Confine a worker process to what parsing needs, with Linux Landlock (no root, no extra package).

`confine(scratch)` lets this process (and every process it starts, tesseract included) read only
the Python installation, the workbench package, the system's libraries and data (``/usr``,
``/lib``...) and a few files under ``/etc`` and ``/proc``; write only ``scratch`` (a private folder
the parent made for it); and open no TCP connection. Everything else, the index, its users
database, the document folders and the home folder among them, fails with EACCES, even for root.
Files the worker must read reach it as open descriptors from the parent (`workbench.load.sandbox`),
which Landlock does not restrict.

`available()` says whether this kernel offers Landlock, and why not when it does not (kernels
before 5.13, or Landlock left out of the ``lsm=`` list). Leaves out: seccomp system-call filters,
and other operating systems (there the workers keep their other bounds and the parent says the
file sandbox is missing).
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
import sysconfig
from pathlib import Path

_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446  # the same numbers on every Linux architecture
_VERSION_FLAG, _PATH_BENEATH, _NO_NEW_PRIVS = 1, 1, 38
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_FS_ALL_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 5: (1 << 16) - 1}
_NET_BIND_CONNECT = 0b11  # ABI 4: TCP bind and connect
READ_TREE = EXECUTE | READ_FILE | READ_DIR
FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | (1 << 14) | (1 << 15)  # the rights a rule on a file may hold
# read-only system places a parser needs: libraries, tesseract and its language data, time zones
SYSTEM_TREES = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc/fonts", "/etc/alternatives",
                "/etc/ssl", "/sys/devices/system/cpu")
SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/localtime", "/etc/mime.types", "/etc/nsswitch.conf", "/etc/passwd",
                "/etc/group", "/proc/cpuinfo", "/proc/meminfo", "/proc/self/maps", "/proc/self/status", "/proc/self/environ",
                "/sys/fs/cgroup/cpu.max")
DEVICES = ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random")


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _Ruleset(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def abi_version() -> int:
    """Landlock's ABI version on this kernel; 0 when there is none (or not Linux)."""
    if sys.platform != "linux":
        return 0
    try:
        version = _libc().syscall(ctypes.c_long(_CREATE_RULESET), None, ctypes.c_size_t(0), ctypes.c_long(_VERSION_FLAG))
    except (OSError, AttributeError):
        return 0
    return max(0, int(version))


def available() -> tuple[bool, str]:
    """(True, how) when workers can be confined here, else (False, why not and what to do)."""
    version = abi_version()
    if version:
        return True, f"Landlock ABI {version}: each parser reads only its own file and writes only a scratch folder"
    if sys.platform != "linux":
        return False, f"Landlock is Linux only (this is {platform.system()})"
    return False, (f"this kernel ({platform.release()}) offers no Landlock: Linux 5.13 or newer with landlock in its "
                   "lsm= boot list is needed")


def read_roots() -> list[str]:
    """The Python installation and the workbench package: what a worker reads to import its parsers."""
    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    roots.add(str(Path(__file__).resolve().parents[1]))  # the workbench package (an editable install too)
    roots.add(os.path.dirname(os.path.realpath(sys.executable)))
    return sorted(r for r in roots if r)


def _allow(libc, ruleset: int, path: str, access: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # not on this system: nothing to allow
    try:
        if not os.path.isdir(f"/proc/self/fd/{fd}"):
            access &= FILE_RIGHTS
        rule = _PathBeneath(access, fd)
        if libc.syscall(ctypes.c_long(_ADD_RULE), ctypes.c_long(ruleset), ctypes.c_long(_PATH_BENEATH),
                        ctypes.byref(rule), ctypes.c_long(0)) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"landlock_add_rule({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def confine(scratch: str | os.PathLike | None) -> None:
    """Restrict this process for good (see module docstring); OSError when Landlock refuses."""
    version = abi_version()
    if not version:
        raise OSError(38, available()[1])
    fs_all = _FS_ALL_BY_ABI[max(v for v in _FS_ALL_BY_ABI if v <= version)]
    attr = _Ruleset(fs_all, _NET_BIND_CONNECT if version >= 4 else 0, 0)
    size = 16 if version >= 4 else 8  # the fields this ABI knows (scoping is left alone)
    libc = _libc()
    ruleset = libc.syscall(ctypes.c_long(_CREATE_RULESET), ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_long(0))
    if ruleset < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"landlock_create_ruleset: {os.strerror(err)}")
    try:
        for tree in (*SYSTEM_TREES, *read_roots()):
            _allow(libc, ruleset, tree, READ_TREE & fs_all)
        for file in SYSTEM_FILES:
            _allow(libc, ruleset, file, READ_FILE)
        for device in DEVICES:
            _allow(libc, ruleset, device, READ_FILE | WRITE_FILE)
        if scratch is not None:
            _allow(libc, ruleset, os.fspath(scratch), fs_all)
        no_new_privs = libc.prctl(ctypes.c_int(_NO_NEW_PRIVS), ctypes.c_ulong(1), ctypes.c_ulong(0),
                                  ctypes.c_ulong(0), ctypes.c_ulong(0))
        if no_new_privs != 0 or libc.syscall(ctypes.c_long(_RESTRICT_SELF), ctypes.c_long(ruleset), ctypes.c_long(0)) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"landlock_restrict_self: {os.strerror(err)}")
    finally:
        os.close(ruleset)
