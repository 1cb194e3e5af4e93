"""Confinement for code that runs an unverified module: Linux primitives that
an unprivileged process may use on itself.

`confine_self(scratch)` is called first thing in a fresh child process, while
it is still single-threaded (Landlock and user namespaces require that), and
before TensorFlow is imported:

1. resource limits: no core dumps, a cap on the size of any file written and
   on the address space;
2. a new user + network namespace: the process sees only a loopback device
   that is down, so it can open no network connection at all;
3. Landlock: every file-system write (create, write, truncate, remove,
   rename, link, make device/socket/FIFO) is denied outside `scratch`
   (and `/dev/null`); with Landlock ABI >= 4 TCP bind/connect are denied
   too, and with ABI >= 6 the process may not signal or reach abstract Unix
   sockets of processes outside its domain.

Reads are not restricted: a module may read what the user may read, but it
has no way to send it anywhere. `probe()` reports what this kernel offers
without changing the calling process.
"""

import ctypes
import ctypes.util
import os
import resource
from typing import Dict, List, Optional

_SYS_LANDLOCK_CREATE_RULESET = 444  # the same number on every architecture
_SYS_LANDLOCK_ADD_RULE = 445
_SYS_LANDLOCK_RESTRICT_SELF = 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000

# Landlock file-system rights (include/uapi/linux/landlock.h).
_WRITE_FILE = 1 << 1
_REMOVE_DIR, _REMOVE_FILE = 1 << 4, 1 << 5
_MAKE_ALL = sum(1 << b for b in range(6, 13))  # char, dir, reg, sock, fifo, block, sym
_REFER = 1 << 13  # ABI 2
_TRUNCATE = 1 << 14  # ABI 3
_NET_TCP = (1 << 0) | (1 << 1)  # bind, connect: ABI 4
_SCOPE_ALL = (1 << 0) | (1 << 1)  # abstract unix sockets, signals: ABI 6


class ConfinementError(OSError):
  """The kernel refused one of the confinement steps."""


class _RulesetAttr(ctypes.Structure):
  _fields_ = [
    ("handled_access_fs", ctypes.c_uint64),
    ("handled_access_net", ctypes.c_uint64),
    ("scoped", ctypes.c_uint64),
  ]


class _PathBeneathAttr(ctypes.Structure):
  _pack_ = 1
  _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc():
  return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def landlock_abi() -> int:
  """The Landlock ABI version this kernel offers (0 when it has none)."""
  try:
    libc = _libc()
    abi = libc.syscall(
      _SYS_LANDLOCK_CREATE_RULESET,
      None,
      ctypes.c_size_t(0),
      ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION),
    )
  except (OSError, AttributeError):
    return 0
  return max(abi, 0)


def probe() -> Dict[str, object]:
  """What confinement this machine offers, without applying any."""
  return {"landlock_abi": landlock_abi(), "platform": os.uname().sysname}


def _check(result: int, what: str) -> int:
  if result < 0:
    errno = ctypes.get_errno()
    raise ConfinementError(errno, f"{what} failed: {os.strerror(errno)}")
  return result


def _set_limits(memory_bytes: Optional[int], file_bytes: Optional[int]) -> None:
  resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
  if file_bytes:
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
  if memory_bytes:
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


def _enter_network_namespace(libc) -> None:
  uid, gid = os.geteuid(), os.getegid()
  _check(libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET), "unshare(user, net namespace)")
  # Keep the same identity inside the namespace, so files the child creates
  # in its scratch directory belong to the user, as usual.
  with open("/proc/self/setgroups", "w", encoding="ascii") as f:
    f.write("deny")
  with open("/proc/self/uid_map", "w", encoding="ascii") as f:
    f.write(f"{uid} {uid} 1")
  with open("/proc/self/gid_map", "w", encoding="ascii") as f:
    f.write(f"{gid} {gid} 1")


def _restrict_writes(libc, abi: int, writable_dirs: List[str]) -> None:
  handled_fs = _WRITE_FILE | _REMOVE_DIR | _REMOVE_FILE | _MAKE_ALL
  if abi >= 2:
    handled_fs |= _REFER
  if abi >= 3:
    handled_fs |= _TRUNCATE
  attr = _RulesetAttr(handled_fs, _NET_TCP if abi >= 4 else 0, _SCOPE_ALL if abi >= 6 else 0)
  size = ctypes.sizeof(_RulesetAttr) if abi >= 6 else (16 if abi >= 4 else 8)
  ruleset = _check(
    libc.syscall(
      _SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0)
    ),
    "landlock_create_ruleset",
  )
  try:
    file_rights = _WRITE_FILE | (_TRUNCATE if abi >= 3 else 0)
    for path, rights in [(d, handled_fs) for d in writable_dirs] + [("/dev/null", file_rights)]:
      fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
      try:
        rule = _PathBeneathAttr(rights, fd)
        _check(
          libc.syscall(
            _SYS_LANDLOCK_ADD_RULE,
            ctypes.c_int(ruleset),
            ctypes.c_int(_LANDLOCK_RULE_PATH_BENEATH),
            ctypes.byref(rule),
            ctypes.c_uint32(0),
          ),
          f"landlock_add_rule({path})",
        )
      finally:
        os.close(fd)
    _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
    _check(
      libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)),
      "landlock_restrict_self",
    )
  finally:
    os.close(ruleset)


def confine_self(
  scratch: str, memory_bytes: Optional[int] = None, file_bytes: Optional[int] = None
) -> str:
  """Confines the calling (single-threaded) process for good.

  Args:
    scratch: the only directory the process may write below.
    memory_bytes: cap on the address space (RLIMIT_AS), or None.
    file_bytes: cap on the size of any file written (RLIMIT_FSIZE), or None.

  Returns:
    A one-line description of the mechanisms applied (for the report).

  Raises:
    ConfinementError: a mechanism is unavailable (no Landlock, user
      namespaces disabled); the process must then not run the module.
  """
  libc = _libc()
  abi = landlock_abi()
  if abi < 1:
    raise ConfinementError(
      0, "this kernel has no Landlock (Linux >= 5.13 with CONFIG_SECURITY_LANDLOCK, lsm=landlock)"
    )
  _set_limits(memory_bytes, file_bytes)
  _enter_network_namespace(libc)
  _restrict_writes(libc, abi, [scratch])
  return (
    f"Landlock ABI {abi} (writes only below the scratch directory"
    f"{', no TCP' if abi >= 4 else ''}{', scoped signals' if abi >= 6 else ''}), "
    "a private network namespace, rlimits"
  )
