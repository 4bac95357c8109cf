#!/usr/bin/python3
"""Check that none of the base's own COLO implementation reaches the build.

    check_no_base_colo.py BUILD

BUILD/src is the merged tree, BUILD/base the pristine base and
BUILD/qemu/compile_commands.json what ninja compiles.  Fails when
  - a base COLO path exists in the merged tree but is not the project's,
  - any file of the merged tree has the bytes of a base COLO file,
  - a compiled source sits at a base COLO path that is not the project's.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from colo_files import BASE_COLO_FILES  # noqa: E402

import merge_tree  # noqa: E402


def project_paths(manifest):
    with open(manifest) as f:
        return {line.split()[1] for line in f if line.startswith("project ")}


def problems(build):
    src = os.path.join(build, "src")
    base = os.path.join(build, "base")
    ours = project_paths(os.path.join(build, "colo-manifest.txt"))
    found = []
    for rel in BASE_COLO_FILES:
        if os.path.lexists(os.path.join(src, rel)) and rel not in ours:
            found.append(f"{rel} is in the merged tree but is not the project's")
    for path, colo in merge_tree.find_base_colo_copies(base, src):
        found.append(f"{path} has the bytes of the base's {colo}")
    with open(os.path.join(build, "qemu", "compile_commands.json")) as f:
        for entry in json.load(f):
            path = os.path.normpath(os.path.join(entry["directory"], entry["file"]))
            rel = os.path.relpath(path, src)
            if rel in BASE_COLO_FILES and rel not in ours:
                found.append(f"{rel} is compiled but is not the project's")
    return found


def main(argv):
    if len(argv) != 2:
        print("usage: check_no_base_colo.py BUILD", file=sys.stderr)
        return 2
    found = problems(os.path.abspath(argv[1]))
    for p in found:
        print(f"check-no-base-colo: {p}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
