#!/usr/bin/python3
"""Check that the build compiles every C source the overlay provides.

    check-overlay-compiled.py BUILD

A source the meson files skip (a guard, a stub that stands in, a test left
out) would leave make check green while the feature or its test is gone.
Every .c file under the overlay roots must be in BUILD/qemu's
compile_commands.json, except the fuzz targets, which buildsys/fuzz.sh
builds with clang.  And no meson file of the overlay or line a patch adds
may ask whether a file or a variable exists (fs.exists, is_variable): a
missing source must stop the build, not be skipped.  Prints what it finds
and exits 1 if there is anything.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from colo_files import OVERLAY_ROOTS, overlay_files  # noqa: E402

NOT_BY_MESON = ("tests/fuzz/",)


def overlay_sources():
    return [f for f in overlay_files(REPO, (".c",))
            if not f.startswith(NOT_BY_MESON)]


GUARDS = ("fs.exists(", "is_variable(")


def guards():
    """(file, line) of every existence test in our meson files and in the
    lines our patches add."""
    found = []
    for root in OVERLAY_ROOTS:
        for dirpath, _, names in os.walk(os.path.join(REPO, root)):
            for n in names:
                if n == "meson.build":
                    path = os.path.join(dirpath, n)
                    with open(path) as f:
                        found += [(os.path.relpath(path, REPO), line.strip())
                                  for line in f if any(g in line
                                                       for g in GUARDS)]
    patches = os.path.join(REPO, "patches")
    for n in sorted(os.listdir(patches)):
        if n.endswith(".patch"):
            with open(os.path.join(patches, n)) as f:
                found += [("patches/" + n, line[1:].strip()) for line in f
                          if line.startswith("+") and
                          any(g in line for g in GUARDS)]
    return found


def compiled(build):
    with open(os.path.join(build, "qemu", "compile_commands.json")) as f:
        entries = json.load(f)
    src = os.path.join(build, "src")
    return {os.path.relpath(os.path.normpath(os.path.join(e["directory"],
                                                          e["file"])), src)
            for e in entries}


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: check-overlay-compiled.py BUILD")
    build = os.path.abspath(sys.argv[1])
    done = compiled(build)
    sources = overlay_sources()
    missing = [s for s in sources if s not in done]
    guarded = guards()
    for s in missing:
        print(f"not compiled: {s}")
    for path, line in guarded:
        print(f"existence test in {path}: {line}")
    print(f"check-overlay-compiled: {len(sources) - len(missing)} of "
          f"{len(sources)} overlay sources compiled, {len(guarded)} "
          f"existence tests")
    return 1 if missing or guarded else 0


if __name__ == "__main__":
    sys.exit(main())
