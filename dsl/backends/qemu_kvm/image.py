"""The guest side, built once and cached: the static guest program and the base initramfs for one kernel.

The base initramfs holds busybox, the guest program, KVM's modules and `/init`; each boot appends a second,
uncompressed archive with that boot's cases (the kernel unpacks concatenated archives in order).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from dsl.backends.qemu_kvm import cpio
from dsl.backends.qemu_kvm.errors import BackendError
from dsl.backends.qemu_kvm.kernel import Kernel

#: The guest program's source, in the repository (tools/qemu-kvm/ holds the guest-side sources).
GUEST_SOURCE = Path(__file__).resolve().parents[3] / "tools" / "qemu-kvm" / "guest" / "svmrun.c"
#: Where the init script finds each paging mode's cases; the results go to the second serial port.
CASES_NPT = "cases-npt1.txt"
CASES_SHADOW = "cases-npt0.txt"
RESULTS_TTY = "/dev/ttyS1"
_BUSYBOX_PATHS = ("/bin/busybox", "/usr/bin/busybox")
_BUILD_SECONDS = 120

#: /init: mount what KVM and the tracepoints need, load KVM, run each paging mode's cases, power off.
INIT_SCRIPT = f"""#!/bin/busybox sh
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
$B mount -t devtmpfs dev /dev
$B mount -t tracefs tracefs /sys/kernel/tracing
$B insmod /mods/irqbypass.ko
$B insmod /mods/kvm.ko
for event in kvm_entry kvm_exit kvm_inj_exception kvm_inj_virq; do
  echo 1 > /sys/kernel/tracing/events/kvm/$event/enable
done
for npt in 1 0; do
  if [ -s /cases-npt$npt.txt ]; then
    $B insmod /mods/kvm-amd.ko nested=1 npt=$npt
    echo "paging npt=$npt nrips=$($B cat /sys/module/kvm_amd/parameters/nrips)" > {RESULTS_TTY}
    /bin/svmrun < /cases-npt$npt.txt > {RESULTS_TTY} 2>&1
    $B rmmod kvm_amd
  fi
done
echo finished > {RESULTS_TTY}
$B poweroff -f
"""


def cache_root() -> Path:
    """$XDG_CACHE_HOME/svmdsl, else ~/.cache/svmdsl."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "svmdsl"


def _digest(*parts: bytes) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(hashlib.sha256(part).digest())
    return hasher.hexdigest()[:16]


def _partial(target: Path) -> Path:
    """A name to build `target` under before renaming it into place: per process, as test workers share the cache."""
    return target.with_name(f"{target.name}.{os.getpid()}.partial")


def guest_program(cache: Path) -> Path:
    """The static guest program, compiled from GUEST_SOURCE (cached by its source's hash)."""
    if not GUEST_SOURCE.is_file():
        raise BackendError(f"the guest program's source is missing: {GUEST_SOURCE} (run from a checkout of svm-dsl)")
    source = GUEST_SOURCE.read_bytes()
    binary = cache / "guest" / f"svmrun-{_digest(source)}"
    if binary.is_file():
        return binary
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise BackendError("the guest program needs gcc and a static libc (Debian: apt-get install -y gcc libc6-dev)")
    binary.parent.mkdir(parents=True, exist_ok=True)
    partial = _partial(binary)
    command = [compiler, "-static", "-O2", "-o", str(partial), str(GUEST_SOURCE)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=_BUILD_SECONDS, check=False)
    if done.returncode != 0:
        raise BackendError(f"building the guest program failed: {' '.join(command)}:\n{done.stderr.strip()}")
    partial.rename(binary)
    return binary


def busybox() -> Path:
    for path in _BUSYBOX_PATHS:
        if Path(path).is_file():
            return Path(path)
    raise BackendError("busybox is not installed (Debian: apt-get install -y busybox-static)")


def base_initramfs(kernel: Kernel, cache: Path) -> Path:
    """The gzip'd base archive for `kernel` (cached by the hash of everything in it)."""
    program = guest_program(cache).read_bytes()
    shell = busybox().read_bytes()
    modules = tuple((path.name, path.read_bytes()) for path in kernel.modules)
    key = _digest(program, shell, INIT_SCRIPT.encode(), *(data for _, data in modules))
    target = cache / "initramfs" / f"{kernel.name}-{key}.cpio.gz"
    if target.is_file():
        return target
    entries = (
        cpio.Entry("bin", cpio.DIRECTORY),
        cpio.Entry("bin/busybox", cpio.EXECUTABLE, shell),
        cpio.Entry("bin/svmrun", cpio.EXECUTABLE, program),
        cpio.Entry("dev", cpio.DIRECTORY),
        cpio.Entry("init", cpio.EXECUTABLE, INIT_SCRIPT.encode()),
        cpio.Entry("mods", cpio.DIRECTORY),
        *(cpio.Entry(f"mods/{name}", cpio.REGULAR, data) for name, data in modules),
        cpio.Entry("proc", cpio.DIRECTORY),
        cpio.Entry("sys", cpio.DIRECTORY),
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = _partial(target)
    partial.write_bytes(gzip.compress(cpio.archive(entries), compresslevel=1, mtime=0))
    partial.rename(target)
    return target


def cases_archive(npt_cases: str, shadow_cases: str) -> bytes:
    """The per-boot archive with the cases of each paging mode (uncompressed, appended to the base)."""
    return cpio.archive(
        (
            cpio.Entry(CASES_NPT, cpio.REGULAR, npt_cases.encode()),
            cpio.Entry(CASES_SHADOW, cpio.REGULAR, shadow_cases.encode()),
        )
    )
