#!/usr/bin/python3
"""Compile every C source of the overlay again with -Werror.

    check-overlay-werror.py BUILD

QEMU is configured with --disable-werror (the base's own sources are not
ours to fix), so a warning in one of our files would scroll past in the
build log, or not show at all in an incremental build.  This check runs
each overlay source's own command from BUILD/qemu/compile_commands.json
once more with -Werror and -fsyntax-only (nothing is written), two at a
time, prints every warning and exits 1 if there was one.
"""

import json
import os
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from colo_files import overlay_files  # noqa: E402


def without_outputs(argv):
    """@argv without what it writes: the object (-o) and the dependency
    file (-MD, -MQ, -MF)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in ("-o", "-MQ", "-MF"):
            skip = True
        elif a != "-MD":
            out.append(a)
    return out


def commands(build):
    """Overlay source (relative to the tree) -> (directory, argv)."""
    with open(os.path.join(build, "qemu", "compile_commands.json")) as f:
        entries = json.load(f)
    src = os.path.join(build, "src")
    ours = set(overlay_files(REPO, (".c",)))
    found = {}
    for e in entries:
        path = os.path.relpath(os.path.normpath(os.path.join(e["directory"],
                                                             e["file"])), src)
        if path in ours and path not in found:
            argv = e.get("arguments") or shlex.split(e["command"])
            found[path] = (e["directory"],
                           without_outputs(argv) + ["-Werror",
                                                    "-fsyntax-only"])
    return found


def check(item):
    path, (directory, argv) = item
    r = subprocess.run(argv, cwd=directory,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    return path, r.returncode, r.stdout


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: check-overlay-werror.py BUILD")
    build = os.path.abspath(sys.argv[1])
    cmds = commands(build)
    failed = 0
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for path, rc, out in pool.map(check, sorted(cmds.items())):
            if rc:
                failed += 1
                print(f"--- {path}\n{out.strip()}")
    print(f"check-overlay-werror: {len(cmds)} overlay sources compiled with "
          f"-Werror, {failed} with warnings")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
