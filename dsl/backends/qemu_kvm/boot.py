"""Boot the kernel under QEMU's TCG with AMD-V emulated, run a batch of lowered cases, return what they printed."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import attrs

from dsl.backends.qemu_kvm import image
from dsl.backends.qemu_kvm.errors import BackendError
from dsl.backends.qemu_kvm.kernel import Kernel
from dsl.backends.qemu_kvm.lower import GuestCase
from dsl.engine.vocab import PagingMode

QEMU = "qemu-system-x86_64"
#: TCG emulates AMD-V with nested paging; the CPU model has no NRIPS either way (Q-1).
QEMU_CPU = "qemu64,+svm,+npt"
GUEST_MEMORY_MB = "512"
#: `no_timer_check`: on a loaded host TCG runs the guest so slowly that the kernel's IO-APIC timer check can fail
#: and panic in `check_timer` ("IO-APIC + timer doesn't work!"); the check proves nothing for this guest.
KERNEL_COMMAND_LINE = "console=ttyS0 panic=-1 quiet no_timer_check"
#: A boot takes about 5 s plus the cases; this bounds a hung guest.
BOOT_SECONDS = 240
#: The kernel finds an appended archive only at a 4-byte aligned offset (init/initramfs.c).
_ARCHIVE_ALIGN = 4
FINISHED = "finished"


@attrs.frozen
class BootOutput:
    """What the guest program printed (the results port) and the kernel's console, and how long it took."""

    results: str
    console: str
    seconds: float


def boot(kernel: Kernel, cases: Iterable[GuestCase], cache: Path) -> BootOutput:
    """One boot running every case (npt=1 cases first, then kvm_amd reloaded with npt=0)."""
    qemu = shutil.which(QEMU)
    if qemu is None:
        raise BackendError(
            f"{QEMU} is not installed (Debian: apt-get install -y qemu-system-x86; or .ci/qemu-kvm-deps.sh)"
        )
    cases = tuple(cases)
    by_paging = {paging: "".join(case.text() for case in cases if case.paging is paging) for paging in PagingMode}
    base = image.base_initramfs(kernel, cache).read_bytes()
    padding = b"\0" * (-len(base) % _ARCHIVE_ALIGN)
    with tempfile.TemporaryDirectory(prefix="svmdsl-qemu-") as folder:
        work = Path(folder)
        initrd = work / "initrd"
        initrd.write_bytes(
            base + padding + image.cases_archive(by_paging[PagingMode.NPT], by_paging[PagingMode.SHADOW])
        )
        console, results = work / "console.log", work / "results.log"
        command = [
            qemu, "-accel", "tcg", "-cpu", QEMU_CPU, "-m", GUEST_MEMORY_MB, "-nodefaults", "-display", "none",
            "-no-reboot", "-kernel", str(kernel.vmlinuz), "-initrd", str(initrd), "-append", KERNEL_COMMAND_LINE,
            "-serial", f"file:{console}", "-serial", f"file:{results}",
        ]  # fmt: skip
        started = time.monotonic()
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=BOOT_SECONDS, check=False)
        except subprocess.TimeoutExpired as expired:
            raise BackendError(f"QEMU did not finish within {BOOT_SECONDS} s: {_tail(console)}") from expired
        seconds = time.monotonic() - started
        output = BootOutput(_read(results), _read(console), seconds)
    if done.returncode != 0:
        raise BackendError(f"QEMU failed ({done.returncode}): {done.stderr.strip() or _last(output.console)}")
    if FINISHED not in output.results.splitlines():
        raise BackendError(f"the guest did not finish its cases; console: {_diagnosis(output.console)}")
    return output


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace").replace("\r", "")
    except OSError:
        return ""


def _last(text: str, lines: int = 5) -> str:
    return " | ".join(text.strip().splitlines()[-lines:]) or "(nothing)"


#: Console lines that say why a boot died, worth showing ahead of the last lines.
_DIAGNOSTIC_MARKERS = ("Kernel panic", "BUG:", "WARNING:", "Oops")


def _diagnosis(console: str) -> str:
    """The first line that says why the kernel died (if any), then the last lines of the console."""
    reason = next((line for line in console.splitlines() if any(m in line for m in _DIAGNOSTIC_MARKERS)), "")
    return f"{reason.strip()} … {_last(console)}" if reason else _last(console)


def _tail(path: Path) -> str:
    return _last(_read(path))
