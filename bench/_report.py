"""What every benchmark shares: the machine line and writing its own section of BENCHMARKS.md."""

from __future__ import annotations

import os
import platform
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "BENCHMARKS.md"
HEADER = "# Benchmarks\n\nEach section says what it measured and the command that reproduces it.\n\n"


def machine() -> str:
    """Cores, RAM, CPU model and Python of this machine, one line."""
    cores = os.cpu_count()
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip() + ", "
                break
    except OSError:
        model = (platform.processor() or platform.machine()) + ", "
    return f"{cores} cores, {mem_gb:.0f} GB RAM, {model}Python {sys.version.split()[0]}"


def write_section(section: str, path: Path = BENCHMARKS) -> None:
    """Put ``section`` (a markdown text whose first line is its ``## Title``) in BENCHMARKS.md,
    replacing the section of the same title if there is one, else appending it."""
    title = section.splitlines()[0].rstrip()
    if not title.startswith("## "):
        raise ValueError(f"a benchmark section starts with '## <title>', got {title!r}")
    text = path.read_text() if path.exists() else HEADER
    pattern = re.compile(rf"^{re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    body = section.rstrip("\n") + "\n\n"
    text = pattern.sub(lambda _m: body, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + body
    path.write_text(text.rstrip("\n") + "\n")
