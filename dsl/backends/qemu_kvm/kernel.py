"""The kernel the guest boots: a Debian `linux-image-*` package, downloaded (never installed) and unpacked.

`--kernel` takes a package name (`linux-image-6.1.0-56-cloud-amd64`, or the meta-package
`linux-image-cloud-amd64`, resolved to the versioned one it depends on), a `.deb` file, or an unpacked tree. A
package name may name another Debian release, `bullseye:linux-image-cloud-amd64`: apt then reads that release's
package list into a private state folder in the cache (the system's apt configuration is left alone).
The unpacked tree lives in the cache folder; KVM's modules come from it. The kernel's upstream version picks the
engine policy to compare with.
"""

from __future__ import annotations

import lzma
import os
import re
import shutil
import subprocess
from pathlib import Path

import attrs

from dsl.backends.qemu_kvm.errors import BackendError
from dsl.engine.vocab import PolicyName

#: The current Debian kernel flavour with kvm-amd.ko (the cloud flavour ships it, and boots quickly).
DEFAULT_PACKAGE = "linux-image-cloud-amd64"
#: The modules the guest loads, in load order (modinfo: kvm-amd depends on kvm, kvm on irqbypass).
MODULES = ("irqbypass", "kvm", "kvm-amd")
_MODULE_DIRS = ("kernel/virt/lib", "kernel/arch/x86/kvm")
_VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?")
_COMMAND_SECONDS = 300
#: Where `RELEASE:PACKAGE` kernels come from.
DEBIAN_MIRROR = "http://deb.debian.org/debian"
_RELEASE = re.compile(r"^(?P<release>[a-z][a-z-]+):(?P<package>linux-image-\S+)$")

#: Upstream releases at which the modelled behaviour changes (README § Policy names), newest first.
_POLICY_FROM: tuple[tuple[tuple[int, int, int], PolicyName], ...] = (
    ((7, 1, 0), PolicyName.KVM_7_1),
    ((6, 19, 0), PolicyName.KVM_6_19),
    ((6, 6, 0), PolicyName.KVM_6_6),
    ((6, 2, 0), PolicyName.KVM_6_2),
    # 4da3768e1820 (Cc: stable) reached 6.1.y: 6.1.192 drops INT 0x80 and a re-injection whose bytes changed, as
    # kvm-6.19 does (tests/backends). The first 6.1.y release with it is not known; 6.1.192 is the observed bound.
    ((6, 1, 192), PolicyName.KVM_6_19),
    # 17122c06b86c was backported to 6.1.y in "[PATCH 6.1 17/46]" (Feb 2023, 6.1.14): kvm-6.2's behaviour.
    ((6, 1, 14), PolicyName.KVM_6_2),
    ((6, 0, 0), PolicyName.KVM_6_0),
    ((0, 0, 0), PolicyName.KVM_5_19),
)


@attrs.frozen
class Kernel:
    """An unpacked kernel: its image, the KVM modules (uncompressed) and its upstream version."""

    name: str
    vmlinuz: Path
    modules: tuple[Path, ...]
    version: str

    @property
    def policy(self) -> PolicyName:
        return policy_for_version(self.version)


def policy_for_version(version: str) -> PolicyName:
    """The engine policy of an upstream kernel version such as `6.1.192` (a stable series counts its backports)."""
    match = _VERSION.match(version)
    if match is None:
        raise BackendError(f"cannot read a kernel version from {version!r}")
    key = (int(match.group(1)), int(match.group(2)), int(match.group(3) or 0))
    return next(policy for start, policy in _POLICY_FROM if key >= start)


def prepare(spec: str | None, cache: Path) -> Kernel:
    """Download and unpack the kernel named by `spec` (None: the current cloud kernel) into `cache`."""
    spec = spec or DEFAULT_PACKAGE
    candidate = Path(spec)
    if candidate.is_dir():
        return _from_tree(candidate, candidate.name, _tree_version(candidate))
    if candidate.suffix == ".deb":
        if not candidate.is_file():
            raise BackendError(f"{spec}: no such kernel package file")
        return _unpack(candidate, cache)
    other = _RELEASE.match(spec)
    apt = _private_apt(other["release"], cache) if other else []
    package = _resolve(other["package"] if other else spec, apt)
    return _unpack(_download(package, cache / "debs", apt), cache)


def _private_apt(release: str, cache: Path) -> list[str]:
    """apt options for a private state folder holding `release`'s package list (fetched once, then cached)."""
    state = cache / "apt" / release
    sources = state / "sources.list"
    options = [
        "-o", f"Dir::Etc::SourceList={sources}", "-o", "Dir::Etc::SourceParts=/dev/null",
        "-o", f"Dir::State::Lists={state / 'lists'}", "-o", f"Dir::Cache={state / 'cache'}",
    ]  # fmt: skip
    if not any((state / "lists").glob("*_Packages*")):
        for folder in (state / "lists" / "partial", state / "cache" / "archives" / "partial"):
            folder.mkdir(parents=True, exist_ok=True)
        sources.write_text(f"deb {DEBIAN_MIRROR} {release} main\n")
        _run(["apt-get", *options, "update"], f"reading Debian {release}'s package list")
    return options


def _run(command: list[str], what: str, cwd: Path | None = None) -> str:
    if shutil.which(command[0]) is None:
        raise BackendError(f"{what} needs `{command[0]}`, which is not installed (Debian: apt-get install -y apt dpkg)")
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=_COMMAND_SECONDS, check=False)
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise BackendError(f"{what} failed: `{' '.join(command)}`: {detail[-1] if detail else done.returncode}")
    return done.stdout


def _resolve(package: str, apt: list[str]) -> str:
    """A meta-package (linux-image-cloud-amd64) resolves to the versioned linux-image-* it depends on."""
    output = _run(["apt-cache", *apt, "depends", package], f"looking up {package}")
    for line in output.splitlines():
        found = re.match(r"\s+Depends:\s+(linux-image-\d\S*)", line)
        if found:
            return found.group(1)
    if re.match(r"linux-image-\d", package):
        return package
    raise BackendError(f"{package} depends on no versioned linux-image package (run apt-get update?)")


def _download(package: str, folder: Path, apt: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    existing = sorted(folder.glob(f"{package}_*.deb"))
    if existing:
        return existing[-1]
    _run(
        ["apt-get", *apt, "download", package],
        f"downloading {package} (is it in `apt-cache policy {package}`?)",
        folder,
    )
    downloaded = sorted(folder.glob(f"{package}_*.deb"))
    if not downloaded:
        raise BackendError(f"apt-get download {package} left no .deb in {folder}")
    return downloaded[-1]


def _unpack(deb: Path, cache: Path) -> Kernel:
    version = _run(["dpkg-deb", "-f", str(deb), "Version"], f"reading {deb.name}").strip()
    tree = cache / "kernels" / deb.name.removesuffix(".deb")
    if not (tree / "version").is_file():
        partial = tree.with_name(f"{tree.name}.{os.getpid()}.partial")  # per process: test workers share the cache
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        _run(["dpkg-deb", "-x", str(deb), str(partial)], f"unpacking {deb.name}")
        (partial / "version").write_text(version + "\n")
        try:
            partial.rename(tree)
        except OSError:  # another process finished the same tree first
            shutil.rmtree(partial, ignore_errors=True)
    return _from_tree(tree, deb.name.split("_")[0], version)


def _tree_version(tree: Path) -> str:
    recorded = tree / "version"
    if recorded.is_file():
        return recorded.read_text().strip()
    releases = sorted(path.name for path in (tree / "lib" / "modules").glob("*"))
    if not releases:
        raise BackendError(f"{tree}: no lib/modules/<release> folder: not an unpacked linux-image package")
    return releases[-1]


def _from_tree(tree: Path, name: str, version: str) -> Kernel:
    images = sorted((tree / "boot").glob("vmlinuz-*"))
    module_roots = sorted((tree / "lib" / "modules").glob("*"))
    if not images or not module_roots:
        raise BackendError(f"{tree}: no boot/vmlinuz-* or lib/modules/<release>: not a linux-image package")
    modules = tuple(_module(module_roots[-1], name_) for name_ in MODULES)
    return Kernel(name, images[-1], modules, version)


def _module(root: Path, name: str) -> Path:
    for folder in _MODULE_DIRS:
        plain = root / folder / f"{name}.ko"
        if plain.is_file():
            return plain
        packed = root / folder / f"{name}.ko.xz"
        if packed.is_file():
            # busybox insmod takes uncompressed modules only
            plain.write_bytes(lzma.decompress(packed.read_bytes()))
            return plain
    raise BackendError(f"{root}: no {name}.ko (this kernel flavour lacks KVM for AMD; try linux-image-amd64)")
