#!/usr/bin/python3
"""QEMU's style check on everything this repository adds to the base.

    checkpatch.py BUILD

Runs the base's scripts/checkpatch.pl (from BUILD/src, the merged tree) on
every C source and header of the overlay, file by file, and on every patch
of patches/series as a patch (without asking for Signed-off-by lines: they
are added when a patch is posted).  Prints what it finds and exits 1 if it
found anything, so that make check stays clean.
"""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from colo_files import overlay_files  # noqa: E402


def series():
    with open(os.path.join(REPO, "patches", "series")) as f:
        names = [line.split("#", 1)[0].strip() for line in f]
    return [os.path.join("patches", n) for n in names if n]


def check(script, args):
    r = subprocess.run(["perl", script, "--no-tree", "-q"] + args, cwd=REPO,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    return r.returncode, r.stdout.strip()


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    script = os.path.join(os.path.abspath(sys.argv[1]), "src", "scripts",
                          "checkpatch.pl")
    if not os.path.exists(script):
        sys.exit(f"checkpatch: {script} is missing: run make build first")
    bad = 0
    sources = overlay_files(REPO, (".c", ".h"))
    patches = series()
    for path in sources:
        rc, out = check(script, ["-f", path])
        if rc or out:
            bad += 1
            print(f"--- {path}\n{out}")
    for path in patches:
        rc, out = check(script, ["--no-signoff", path])
        if rc or out:
            bad += 1
            print(f"--- {path}\n{out}")
    print(f"checkpatch: {len(sources)} files and {len(patches)} patches, "
          f"{bad} with problems")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
