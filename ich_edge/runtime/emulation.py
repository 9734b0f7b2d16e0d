"""Other LiteRT runtimes on this machine: emulated aarch64 and other ai-edge-litert versions.

Phones and edge boxes run LiteRT's aarch64 kernels, and apps pin their own LiteRT version.
``.ci/provision-arm.sh`` puts, under ``.arm/`` of the checkout (or ``$ICH_EDGE_ARM_DIR``),
a Debian arm64 Python run through qemu-user with one folder of aarch64 wheels per LiteRT
version, and an x86_64 folder for another version; ``.arm/runtimes.json`` lists them.

:class:`Runtime` runs a Python command on one of them (a subprocess). :func:`predict_files`
runs the runtime tier's ``TFLiteStudyModel.predict_series`` there, on ``.npy`` image files,
through this module's worker (``python -m ich_edge.runtime.emulation``), so the outputs are
the kernels of that architecture and version, not this process's.

Runtime tier: standard library at import; the worker imports numpy and ai-edge-litert.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ich_edge.errors import ConfigError, IchEdgeError, MissingDependencyError
from ich_edge.fileio import read_optional_json

ARM_DIR_ENV = "ICH_EDGE_ARM_DIR"
#: Set in an emulated run (e.g. ``qemu-aarch64 10.0.2 -cpu cortex-a76``): ``ich-edge bench`` marks
#: its timings as not meaningful (run it through ``.arm/`` by hand: ``ICH_EDGE_EMULATED=qemu ...``).
EMULATED_ENV = "ICH_EDGE_EMULATED"
#: Set in an emulated run: the emulator's argv (JSON) that starts this Python again (qemu-user
#: does not follow exec of another aarch64 program); see :func:`python_command`.
EMULATOR_ENV = "ICH_EDGE_EMULATOR"
PROVISION_COMMAND = "bash .ci/provision-arm.sh"
PLATFORMS = ("host", "aarch64")
#: The checkout (the folder holding ich_edge/): its .arm/, and PYTHONPATH of worker runs.
SOURCE_ROOT = Path(__file__).resolve().parents[2]
#: Host variables that would leak into another Python (and, emulated, into the guest's loader).
_DROPPED_ENV = ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "LD_PRELOAD", "LD_LIBRARY_PATH", "VIRTUAL_ENV")


def python_command() -> list[str]:
    """The argv that starts this Python again (bench's worker processes): under emulation the
    emulator comes first, since the guest cannot exec an aarch64 program by itself."""
    prefix = json.loads(os.environ.get(EMULATOR_ENV) or "[]")
    return [*prefix, sys.executable]


def arm_dir() -> Path:
    """Where ``.ci/provision-arm.sh`` put the runtimes (``$ICH_EDGE_ARM_DIR`` or ``.arm/``)."""
    return Path(os.environ.get(ARM_DIR_ENV) or SOURCE_ROOT / ".arm")


@dataclass(frozen=True)
class Runtime:
    """One Python with one ai-edge-litert: ``python`` (argv prefix) and its extra ``pythonpath``."""

    arch: str
    litert: str
    emulated: bool
    python: tuple[str, ...]
    pythonpath: tuple[str, ...] = ()
    detail: str = ""
    env: dict = field(default_factory=dict, compare=False)

    @property
    def name(self) -> str:
        """``aarch64 ai-edge-litert 2.3.0 (emulated: qemu ..., cortex-a76)``."""
        return f"{self.arch} ai-edge-litert {self.litert}" + (f" ({self.detail})" if self.detail else "")

    def to_dict(self) -> dict:
        return {"arch": self.arch, "litert": self.litert, "emulated": self.emulated, "detail": self.detail}

    def run(self, args: list[str], timeout_s: float, with_package: bool = True, cwd: str | Path | None = None):
        """Run ``python ARGS`` here; ``with_package`` puts this checkout's ich_edge on the path."""
        env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
        path = [*self.pythonpath, *([str(SOURCE_ROOT)] if with_package else [])]
        env.update(self.env, PYTHONNOUSERSITE="1", PYTHONDONTWRITEBYTECODE="1")
        if path:
            env["PYTHONPATH"] = os.pathsep.join(path)
        try:
            return subprocess.run([*self.python, *map(str, args)], env=env, cwd=cwd, capture_output=True,
                                  text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired as err:
            raise IchEdgeError(f"{self.name}: no result after {timeout_s:.0f} s") from err


def native_runtime() -> Runtime:
    """This process's Python and ai-edge-litert."""
    from importlib import metadata

    try:
        version = metadata.version("ai-edge-litert")
    except metadata.PackageNotFoundError:
        version = "not installed"
    return Runtime(platform.machine(), version, False, (sys.executable,), detail="this Python")


def provisioned_runtimes(folder: Path | None = None) -> list[Runtime]:
    """The runtimes ``.ci/provision-arm.sh`` installed (none when it has not run)."""
    folder = Path(folder or arm_dir())
    info = read_optional_json(folder / "runtimes.json")
    if not isinstance(info, dict):
        return []
    qemu = [str(folder / info["qemu"]), "-cpu", info["cpu"], "-L", str(folder / info["sysroot"])]
    qemu_version = info["qemu_version"].split(" version ")[-1].split(" ")[0]
    runtimes = []
    for entry in info["runtimes"]:
        packages = str(folder / entry["path"])
        if entry["arch"] == "aarch64":
            runtimes.append(Runtime("aarch64", entry["litert"], True, (*qemu, str(folder / entry["python"])), (packages,),
                                    detail=f"emulated: qemu {qemu_version}, -cpu {info['cpu']}",
                                    env={EMULATED_ENV: f"qemu-aarch64 {qemu_version} -cpu {info['cpu']}",
                                         EMULATOR_ENV: json.dumps(qemu)}))
        elif entry["arch"] == platform.machine() and entry.get("python_version") == platform.python_version():
            runtimes.append(Runtime(entry["arch"], entry["litert"], False, (sys.executable,), (packages,),
                                    detail="pip --target folder"))
    return runtimes


def all_runtimes() -> list[Runtime]:
    """This process's runtime first, then every provisioned one."""
    return [native_runtime(), *provisioned_runtimes()]


def select_runtime(platform_name: str, litert: str | None = None) -> Runtime:
    """The runtime of ``--platform``: ``host`` (this process) or ``aarch64`` (the newest
    provisioned LiteRT, or ``litert``). Raises MissingDependencyError when not provisioned."""
    if platform_name not in PLATFORMS:
        raise ConfigError(f"--platform must be one of {', '.join(PLATFORMS)}, got {platform_name!r}")
    if platform_name == "host":
        return native_runtime()
    found = [r for r in provisioned_runtimes() if r.arch == platform_name and litert in (None, r.litert)]
    if not found:
        raise MissingDependencyError(
            f"no emulated {platform_name} runtime{f' with ai-edge-litert {litert}' if litert else ''} in {arm_dir()}; "
            f"install it with `{PROVISION_COMMAND}` (as root, Debian x86_64)"
        )
    return max(found, key=lambda r: tuple(int(p) for p in r.litert.split(".") if p.isdigit()))


def predict_files(runtime: Runtime, model_path: str | Path, image_files: list, threads: int = 2,
                  features: bool = False, timeout_s: float = 3600.0) -> tuple[list, list, float]:
    """``TFLiteStudyModel.predict_series`` of each uint8 ``.npy`` in ``image_files``, run on ``runtime``.

    Returns ``(probabilities, features, seconds)``: per file float32 ``(N, labels)``, per file
    float32 ``(N, F)`` encode outputs (only with ``features``, else ``[]``), and the wall time
    of the run (start-up included).
    """
    import numpy as np

    with tempfile.TemporaryDirectory(prefix="ich_edge_emulated_") as work:
        out = Path(work) / "out.npz"
        args = ["-m", "ich_edge.runtime.emulation", "--model", str(Path(model_path).resolve()), "--out", str(out),
                "--threads", str(threads), *(["--features"] if features else []),
                *[str(Path(p).resolve()) for p in image_files]]
        start = time.perf_counter()
        done = runtime.run(args, timeout_s)
        seconds = time.perf_counter() - start
        if done.returncode != 0 or not out.is_file():
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise IchEdgeError(f"{runtime.name} could not run {Path(model_path).name} (exit {done.returncode}): "
                               + " | ".join(tail))
        with np.load(out) as data:
            probabilities = [data[f"p{k}"] for k in range(len(image_files))]
            encoded = [data[f"f{k}"] for k in range(len(image_files))] if features else []
    return probabilities, encoded, seconds


def _worker(argv: list[str] | None = None) -> int:
    """The worker run on the other runtime: predict each .npy, save ``p<k>`` (and ``f<k>``) to --out."""
    import argparse

    import numpy as np

    from ich_edge.runtime.tflite_model import TFLiteStudyModel

    parser = argparse.ArgumentParser(description="predict_series of .npy image files (ich-edge worker)")
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--features", action="store_true")
    parser.add_argument("images", nargs="+")
    args = parser.parse_args(argv)
    model = TFLiteStudyModel(args.model, num_threads=args.threads)
    arrays = {}
    for k, path in enumerate(args.images):
        images = np.load(path, mmap_mode="r")
        arrays[f"p{k}"] = model.predict_series(images)
        if args.features:
            arrays[f"f{k}"] = model.encode(images)
    np.savez(args.out, **arrays)
    return 0


if __name__ == "__main__":
    sys.exit(_worker())
