"""What the CPU says of itself: the first processor's fields in /proc/cpuinfo, for the gate's
record of where its numbers came from and for CTranslate2's int8 caveat."""

from __future__ import annotations

from pathlib import Path


def cpu_fields(cpuinfo: str | None = None) -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (or of `cpuinfo`, its text): vendor_id,
    model name, flags, ...; {} where there is no such file (not Linux)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return {}
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            if fields:
                break  # the next processor's block: the same CPU again
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields
