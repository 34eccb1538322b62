"""Debian's Chromium for the browser tests: installed with apt-get when it is missing.

Playwright drives the system browser (`/usr/bin/chromium`), never one it downloads, so
the tests need only this machine's package registries.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run",
               "--disable-quic"]


def _apt(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(["apt-get", *args], env=env, capture_output=True, text=True,
                          timeout=900, check=False)


def ensure_chromium() -> Path:
    """The path of Chromium, installing the Debian package first if needed.

    `apt-get update` runs only when the install fails (stale or missing package lists),
    so a machine that already has the lists installs without touching the network twice.
    """
    if CHROMIUM.exists():
        return CHROMIUM
    if shutil.which("apt-get") is None:
        raise RuntimeError(f"{CHROMIUM} is missing and there is no apt-get to install it")
    result = _apt("install", "-y", "--no-install-recommends", "chromium")
    if result.returncode != 0:
        update = _apt("update")
        result = _apt("install", "-y", "--no-install-recommends", "chromium")
        if result.returncode != 0:
            raise RuntimeError("could not install chromium with apt-get:\n"
                               f"{update.stderr[-2000:]}\n{result.stderr[-2000:]}")
    if not CHROMIUM.exists():
        raise RuntimeError(f"apt-get installed chromium but {CHROMIUM} is still missing")
    return CHROMIUM
