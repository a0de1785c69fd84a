"""Builds cmat's compiled scanner (cmat/transcripts/_scan.c) when the package is installed.

The machine's C compiler and Python headers make it; where there are none (or with
CMAT_PURE_PYTHON=1 set at install), the install goes on without it and cmat reads
transcripts in pure Python, to the same records (cmat/transcripts/scanner.py).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = "cmat/transcripts/_scan.c"
FLAGS = ["-O2", "-shared", "-fPIC", "-fvisibility=hidden", "-Wall"]


def compile_scanner(source: Path, target: Path) -> bool:
    """Compile `source` into the extension module `target`; False, said on stderr, if it
    cannot be."""
    compiler = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    command = [*compiler, *FLAGS, f"-I{sysconfig.get_paths()['include']}", str(source),
               "-o", str(target)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"cmat: the compiled scanner was not built ({exc}); transcripts will be read "
              "in pure Python", file=sys.stderr)
        return False
    if done.returncode != 0:
        print(f"cmat: the compiled scanner was not built; transcripts will be read in pure "
              f"Python:\n{done.stderr[-2000:]}", file=sys.stderr)
        return False
    return True


class CompiledScannerHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict) -> None:
        if self.target_name != "wheel" or os.environ.get("CMAT_PURE_PYTHON") == "1":
            return
        name = "_scan" + sysconfig.get_config_var("EXT_SUFFIX")
        root = Path(self.root)
        if version == "editable":  # imported from the source tree: built beside its source
            compile_scanner(root / SOURCE, root / "cmat" / "transcripts" / name)
            return
        self._folder = tempfile.mkdtemp(prefix="cmat-build-")
        target = Path(self._folder) / name
        if compile_scanner(root / SOURCE, target):
            build_data["force_include"][str(target)] = f"cmat/transcripts/{name}"
            build_data["pure_python"] = False
            build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict, artifact_path: str) -> None:
        """The wheel holds the module now: its build folder goes."""
        folder = getattr(self, "_folder", None)
        if folder:
            shutil.rmtree(folder, ignore_errors=True)
