#!/usr/bin/python3
"""Developer helper: write patches/NAME from edits to copies of base files.

    make-patch.py NAME "Subject" "Body..." FILE...

For each FILE (a path in QEMU's tree), the edited copy is read from
build/patch-work/FILE and compared with build/base/FILE.  Copy the base file
there, edit it, then run this.  NAME is added to patches/series if missing.
"""

import difflib
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv):
    if len(argv) < 5:
        print(__doc__, file=sys.stderr)
        return 2
    name, subject, body, files = argv[1], argv[2], argv[3], argv[4:]
    out = [subject, "", body.strip(), ""]
    for rel in files:
        with open(os.path.join(REPO, "build", "base", rel)) as f:
            old = f.readlines()
        with open(os.path.join(REPO, "build", "patch-work", rel)) as f:
            new = f.readlines()
        diff = list(difflib.unified_diff(old, new, "a/" + rel, "b/" + rel))
        if not diff:
            print(f"make-patch: {rel} is unchanged", file=sys.stderr)
            return 1
        out.append("".join(diff).rstrip("\n"))
    with open(os.path.join(REPO, "patches", name), "w") as f:
        f.write("\n".join(out) + "\n")
    series = os.path.join(REPO, "patches", "series")
    with open(series) as f:
        names = [line.strip() for line in f]
    if name not in names:
        with open(series, "a") as f:
            f.write(name + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
