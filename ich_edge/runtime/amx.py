"""Keep Intel AMX away from XNNPACK in this process: the int8 kernels of CPUs without it.

On Linux a process must ask the kernel for the AMX tile state (``arch_prctl(ARCH_REQ_XCOMP_PERM,
XFEATURE_XTILEDATA)``) before it may use AMX; XNNPACK asks once when it starts and, when the
kernel says no, runs its AVX-512 VNNI / AVX2 int8 kernels instead. :func:`deny_amx` installs a
seccomp filter that answers that one request with ``EPERM`` and lets every other system call
through, for this process and the threads and children it starts afterwards (it cannot be
undone: call it in a worker process, as ``ich-edge bench --backend xnnpack-no-amx`` does).

Why: on a server CPU with AMX (Xeon Sapphire Rapids and later) XNNPACK's AMX kernels are fast
for wide layers but slow for the 8-16 channel layers of a small encoder, so an int8 file timed
there says little about CPUs without AMX (phones, most edge boxes, other x86 CPUs).
Runtime tier: standard library only.
"""

from __future__ import annotations

import ctypes
import errno
import platform
import struct
import sys

from ich_edge.errors import ConfigError

#: x86_64 Linux numbers: the system call, its AMX request and the tile-data feature.
SYS_ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA = 158, 0x1023, 18
_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 38, 22, 2
_AUDIT_ARCH_X86_64 = 0xC000003E
_BPF_LD_W_ABS, _BPF_JEQ_K, _BPF_RET_K = 0x20, 0x15, 0x06
_RET_ALLOW, _RET_ERRNO = 0x7FFF0000, 0x00050000
#: Offsets in ``struct seccomp_data``: syscall number, audit arch, low word of the first argument.
_NR, _ARCH, _ARG0 = 0, 4, 16


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _filter_program() -> bytes:
    """BPF: x86_64 ``arch_prctl(ARCH_REQ_XCOMP_PERM, ...)`` -> EPERM; anything else allowed."""
    def stmt(code: int, k: int) -> bytes:
        return struct.pack("HBBI", code, 0, 0, k)

    def jeq(k: int, jump_true: int, jump_false: int) -> bytes:
        return struct.pack("HBBI", _BPF_JEQ_K, jump_true, jump_false, k)

    return b"".join([
        stmt(_BPF_LD_W_ABS, _ARCH), jeq(_AUDIT_ARCH_X86_64, 1, 0), stmt(_BPF_RET_K, _RET_ALLOW),
        stmt(_BPF_LD_W_ABS, _NR), jeq(SYS_ARCH_PRCTL, 1, 0), stmt(_BPF_RET_K, _RET_ALLOW),
        stmt(_BPF_LD_W_ABS, _ARG0), jeq(ARCH_REQ_XCOMP_PERM, 0, 1),
        stmt(_BPF_RET_K, _RET_ERRNO | errno.EPERM), stmt(_BPF_RET_K, _RET_ALLOW),
    ])


def supported() -> str | None:
    """None where :func:`deny_amx` works (Linux x86_64), else why not."""
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        return f"AMX exists only on x86_64 (this is {sys.platform} {platform.machine()})"
    return None


def deny_amx() -> None:
    """Refuse AMX to this process from now on (see the module docstring); ConfigError where impossible."""
    reason = supported()
    if reason:
        raise ConfigError(reason)
    libc = ctypes.CDLL(None, use_errno=True)
    program = ctypes.create_string_buffer(_filter_program())
    fprog = _SockFprog(len(program.raw) // 8, ctypes.cast(program, ctypes.c_void_p))
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 or \
            libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        code = ctypes.get_errno()
        raise ConfigError(f"cannot install the seccomp filter that keeps AMX away ({errno.errorcode.get(code, code)}); "
                          "run without --backend xnnpack-no-amx, or where seccomp is allowed")


def amx_request_errno() -> int:
    """Ask the kernel for AMX tile data as XNNPACK does; 0 when granted, else the errno (EPERM once denied)."""
    if supported():
        return errno.ENOSYS
    libc = ctypes.CDLL(None, use_errno=True)
    return 0 if libc.syscall(SYS_ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 else ctypes.get_errno()
