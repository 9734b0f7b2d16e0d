"""What machine a benchmark ran on: CPU model, cores, SIMD features, memory, library versions.

Runtime tier: standard library only (numpy and ai-edge-litert are asked for their version
through package metadata, not imported). Results from different devices are only comparable
with this next to them.
"""

from __future__ import annotations

import os
import platform
import re
import socket
import sys
from importlib import metadata
from pathlib import Path

#: CPU features that decide which XNNPACK kernels run (x86 and Arm names from /proc/cpuinfo).
SIMD_FEATURES = (
    "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
    "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_int8", "amx_bf16",
    "neon", "asimd", "asimdhp", "asimddp", "fphp", "sve", "sve2", "i8mm", "bf16",
)
#: Packages whose versions go into every result.
PACKAGES = ("ai-edge-litert", "tflite-runtime", "numpy", "pydicom", "ich-edge")


def _cpuinfo_text() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return ""


def cpu_model() -> str:
    """CPU model name: ``model name`` (x86) or ``Hardware``/``CPU part`` (Arm), else platform's guess."""
    text = _cpuinfo_text()
    for key in ("model name", "Hardware", "Processor", "cpu model"):
        match = re.search(rf"^{key}\s*:\s*(.+)$", text, re.MULTILINE)
        if match and match.group(1).strip():
            return match.group(1).strip()
    if sys.platform == "darwin":
        import subprocess

        try:
            out = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5
            )
            if out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown"


def cpu_features() -> list[str]:
    """The :data:`SIMD_FEATURES` this CPU reports (``flags`` on x86, ``Features`` on Arm)."""
    text = _cpuinfo_text()
    match = re.search(r"^(flags|Features)\s*:\s*(.+)$", text, re.MULTILINE)
    present = set(match.group(2).split()) if match else set()
    return [name for name in SIMD_FEATURES if name in present]


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity), which can be fewer than the machine has."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def memory_total_gb() -> float | None:
    """Physical memory in GB, or None where the platform does not say."""
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1)
    except (ValueError, OSError, AttributeError):
        return None


def package_versions() -> dict[str, str | None]:
    """Installed version of each of :data:`PACKAGES` (None when not installed)."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    versions["python"] = platform.python_version()
    return versions


def gpu_names(root: str | Path = "/proc/driver/nvidia/gpus") -> list[str]:
    """Model of each NVIDIA GPU the driver exposes (``Model:`` of its information file); [] if none.

    Only NVIDIA's driver publishes this under /proc; other GPUs are not named (the bench's
    GPU rows still say whether LiteRT found an adapter).
    """
    names = []
    for info in sorted(Path(root).glob("*/information")):
        try:
            text = info.read_text(errors="replace")
        except OSError:
            continue
        match = re.search(r"^Model:\s*(.+)$", text, re.MULTILINE)
        if match:
            names.append(match.group(1).strip())
    return names


def host_name() -> str:
    """The machine's short host name, reduced to ``[A-Za-z0-9-]`` so it can name a file."""
    name = socket.gethostname().split(".")[0] or "host"
    return re.sub(r"[^A-Za-z0-9-]+", "-", name)[:40] or "host"


def machine_info() -> dict:
    """Everything about the machine a result depends on, as a JSON-ready dict."""
    return {
        "host": host_name(),
        "cpu_model": cpu_model(),
        "cpu_features": cpu_features(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "gpus": gpu_names(),
        "memory_total_gb": memory_total_gb(),
        "os": platform.platform(),
        "machine": platform.machine(),
        # An emulated CPU (qemu-user, set by ich_edge.runtime.emulation): timings are not meaningful.
        "emulated": os.environ.get("ICH_EDGE_EMULATED") or None,
        "versions": package_versions(),
    }


def _proc_status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        return None
    return None


def peak_rss_mb() -> float | None:
    """Peak resident memory of this process so far in MB (None where the OS does not say).

    Linux: ``VmHWM`` of /proc/self/status, the high-water mark of this program's own memory.
    ``getrusage``'s ``ru_maxrss`` is not used there: it survives ``exec`` and so counts the
    parent's memory at ``fork`` time in a freshly started worker. Elsewhere ``ru_maxrss``.
    """
    peak = _proc_status_mb("VmHWM")
    if peak is not None:
        return peak
    try:
        import resource
    except ImportError:  # Windows
        return None
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # macOS reports bytes, the BSDs kilobytes.
    return round(maxrss / (1024 * 1024) if sys.platform == "darwin" else maxrss / 1024, 1)


def current_rss_mb() -> float | None:
    """Resident memory of this process now in MB (Linux /proc; None elsewhere)."""
    return _proc_status_mb("VmRSS")
