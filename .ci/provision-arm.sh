#!/usr/bin/env bash
# Other LiteRT kernels without a device (tests/test_runtime_matrix_aarch64.py, `ich-edge parity
# --platform aarch64`, benchmarks/runtime_matrix.py): an aarch64 Debian Python run through
# qemu-user, with numpy, pydicom, click and ai-edge-litert from PyPI's aarch64 wheels, once per
# LiteRT version an app may ship, plus an x86_64 copy of the oldest version for the host.
# Everything goes into .arm/ (ignored by git); .arm/runtimes.json says what is there.
# Idempotent (a second run only compares the stamp); CI runs it as root on a fresh Debian
# x86_64 machine before `make test`. Debian packages and PyPI wheels only.
#
# Why qemu comes from bookworm-backports (10.x) and not bookworm (7.2): ai-edge-litert 2.x
# segfaults in cpuinfo_arm_linux_init (pytorch/cpuinfo, first called when the FULLY_CONNECTED
# kernel is created) under qemu 7.2, with every -cpu: qemu-user before 8.1 hands the guest the
# host's x86 /proc/cpuinfo, in which cpuinfo finds no ARM processor and writes past its
# per-processor array. qemu >= 8.1 emulates an aarch64 /proc/cpuinfo and 2.x runs (1.4.0
# never called cpuinfo there). Only the static qemu-aarch64 binary is taken from the .deb;
# nothing is installed system-wide except debootstrap.
set -euo pipefail
cd "$(dirname "$0")/.."

ARM=.arm
SUITE=bookworm                      # the aarch64 Python: Debian's python3.11
CPU=cortex-a76                      # Raspberry Pi 5, and the big cores of many phones
LITERT_AARCH64="1.4.0 2.3.0"        # oldest the app snippets target (LiteRT 1.4.0 Java API), current
LITERT_X86="1.4.0"                  # the current one on x86_64 is the project's own venv
WHEELS="numpy pydicom click"        # the runtime tier for RLE/uncompressed DICOM (pylibjpeg* have aarch64 wheels too, unneeded here)
STAMP="$SUITE $CPU aarch64:$LITERT_AARCH64 x86_64:$LITERT_X86 $WHEELS v1"

if [ "$(uname -m)" != "x86_64" ]; then
  echo "provision-arm: this machine is $(uname -m); the emulated runtimes are made for x86_64 hosts" >&2
  exit 0
fi
if [ -f "$ARM/stamp" ] && [ "$(cat "$ARM/stamp")" = "$STAMP" ] && [ -x "$ARM/qemu-aarch64" ]; then
  echo "provision-arm: up to date ($STAMP)"
  exit 0
fi
start=$(date +%s)
rm -rf "$ARM"
mkdir -p "$ARM/apt/lists/partial" "$ARM/apt/cache/archives/partial"
export DEBIAN_FRONTEND=noninteractive
if ! command -v debootstrap >/dev/null 2>&1; then
  apt-get update -q
  apt-get install -y -q --no-install-recommends debootstrap
fi
PY=${PYTHON:-python3}
if ! "$PY" -m pip --version >/dev/null 2>&1; then
  apt-get update -q
  apt-get install -y -q --no-install-recommends python3-pip
fi

# 1. qemu-aarch64 >= 8.1 from bookworm-backports, through a private apt state (signatures checked
#    by apt; the machine's sources and lists are not touched).
echo "deb http://deb.debian.org/debian bookworm-backports main" > "$ARM/apt/sources.list"
APT=(-o "Dir::Etc::SourceList=$PWD/$ARM/apt/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
     -o "Dir::State::Lists=$PWD/$ARM/apt/lists" -o "Dir::Cache=$PWD/$ARM/apt/cache" -o "APT::Architecture=amd64" -o "APT::Sandbox::User=root")
apt-get "${APT[@]}" update -q >/dev/null
(cd "$ARM/apt" && apt-get "${APT[@]}" download -q qemu-user/bookworm-backports >/dev/null)
dpkg-deb --fsys-tarfile "$ARM"/apt/qemu-user_*.deb | tar -x -C "$ARM/apt" ./usr/bin/qemu-aarch64
mv "$ARM/apt/usr/bin/qemu-aarch64" "$ARM/qemu-aarch64"
rm -rf "$ARM/apt"
version=$("$ARM/qemu-aarch64" --version | head -1 | sed -E 's/.*version ([0-9]+)\.([0-9]+).*/\1 \2/')
read -r major minor <<< "$version"
if [ "$major" -lt 8 ] || { [ "$major" -eq 8 ] && [ "$minor" -lt 1 ]; }; then
  echo "provision-arm: qemu-aarch64 $major.$minor has no aarch64 /proc/cpuinfo; LiteRT 2.x needs >= 8.1" >&2
  exit 3
fi

# 2. Debian arm64 python3.11: a --foreign debootstrap only downloads (its second stage would need
#    the emulator as /bin/sh), so unpack every downloaded package into the root ourselves.
debootstrap --foreign --arch=arm64 --variant=minbase --include=python3.11 "$SUITE" "$ARM/root" \
  http://deb.debian.org/debian >"$ARM/debootstrap.log" 2>&1 || { tail -20 "$ARM/debootstrap.log" >&2; exit 3; }
for deb in "$ARM"/root/var/cache/apt/archives/*.deb; do dpkg-deb -x "$deb" "$ARM/root"; done
rm -rf "$ARM"/root/var/cache/apt/archives/*.deb "$ARM/root/debootstrap"

# 3. Wheels: one folder per architecture and LiteRT version (PYTHONPATH of the runs).
export PIP_BREAK_SYSTEM_PACKAGES=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
for v in $LITERT_AARCH64; do
  # shellcheck disable=SC2086
  "$PY" -m pip install -q --target "$ARM/aarch64/litert-$v" --only-binary=:all: --python-version 3.11 \
    --platform manylinux_2_27_aarch64 --platform manylinux_2_17_aarch64 --platform manylinux2014_aarch64 \
    $WHEELS "ai-edge-litert==$v"
done
for v in $LITERT_X86; do
  "$PY" -m pip install -q --target "$ARM/x86_64/litert-$v" --only-binary=:all: "ai-edge-litert==$v"
done

# 4. What is there, for ich_edge.runtime.emulation (paths relative to .arm/).
"$PY" - "$ARM" "$CPU" "$LITERT_AARCH64" "$LITERT_X86" <<'EOF'
import json, platform, subprocess, sys
arm, cpu, aarch64, x86 = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4].split()
qemu = subprocess.run([f"{arm}/qemu-aarch64", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
runtimes = [{"arch": "aarch64", "litert": v, "path": f"aarch64/litert-{v}", "python": "root/usr/bin/python3.11"} for v in aarch64]
runtimes += [{"arch": "x86_64", "litert": v, "path": f"x86_64/litert-{v}", "python_version": platform.python_version()} for v in x86]
info = {"qemu": "qemu-aarch64", "qemu_version": qemu, "cpu": cpu, "sysroot": "root", "runtimes": runtimes}
with open(f"{arm}/runtimes.json", "w") as handle:
    json.dump(info, handle, indent=2)
EOF
echo "$STAMP" > "$ARM/stamp"
for v in $LITERT_AARCH64; do
  "$ARM/qemu-aarch64" -cpu "$CPU" -L "$ARM/root" -E "PYTHONPATH=$ARM/aarch64/litert-$v" "$ARM/root/usr/bin/python3.11" \
    -c "import ai_edge_litert.interpreter, numpy, pydicom, click, platform; print('provision-arm: aarch64', platform.machine(), 'ai-edge-litert $v')"
done
echo "provision-arm: done in $(( $(date +%s) - start )) s ($(du -sh "$ARM" | cut -f1))"
