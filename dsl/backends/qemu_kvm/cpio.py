"""Write initramfs archives in the `newc` cpio format the kernel unpacks (Documentation/driver-api/early-userspace).

Written here rather than by the `cpio` tool so that the set-up needs one tool fewer; entries are sorted and carry
no timestamps, so the same inputs give the same bytes (and the same cache key).
"""

from __future__ import annotations

import attrs

_MAGIC = b"070701"
_TRAILER = "TRAILER!!!"
_ALIGN = 4
#: File modes: a directory and a regular file, with permissions.
DIRECTORY = 0o040755
EXECUTABLE = 0o100755
REGULAR = 0o100644


@attrs.frozen
class Entry:
    path: str  # without a leading slash
    mode: int
    data: bytes = b""


def _pad(length: int) -> bytes:
    return b"\0" * (-length % _ALIGN)


def _record(inode: int, entry: Entry) -> bytes:
    name = entry.path.encode() + b"\0"
    links = 2 if entry.mode == DIRECTORY else 1
    fields = (inode, entry.mode, 0, 0, links, 0, len(entry.data), 0, 0, 0, 0, len(name), 0)
    header = _MAGIC + b"".join(b"%08X" % value for value in fields)
    head = header + name
    return head + _pad(len(head)) + entry.data + _pad(len(entry.data))


def archive(entries: tuple[Entry, ...]) -> bytes:
    """A complete newc archive of `entries` (directories must be listed before what they contain)."""
    body = b"".join(_record(inode, entry) for inode, entry in enumerate(entries, start=1))
    return body + _record(0, Entry(_TRAILER, 0))
