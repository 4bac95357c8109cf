#!/usr/bin/python3
"""Developer helper: write patches/NAME from edits to copies of base files.

    make-patch.py NAME "Subject" "Body..." FILE...

For each FILE (a path in QEMU's tree), the edited copy is read from
$BUILD/patch-work/FILE (BUILD: build/ by default) and compared with
$BUILD/base/FILE as the patches before NAME in patches/series leave it,
so that a patch can build on an earlier one that touches the same file.  Copy that state of the file there
(`make-patch.py --prepare NAME FILE...` does), edit it, then run this.
NAME is added to patches/series if missing.
"""

import difflib
import os
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The build tree whose base and patch-work it uses: make build's, unless
# BUILD names another (as make does).
BUILD = os.path.abspath(os.environ.get("BUILD", os.path.join(REPO, "build")))


def series_before(name):
    """The patches applied before NAME (all of them if NAME is new)."""
    with open(os.path.join(REPO, "patches", "series")) as f:
        names = [line.split("#", 1)[0].strip() for line in f]
    names = [n for n in names if n]
    return names[:names.index(name)] if name in names else names


def file_section(patch_text, rel):
    """The part of a unified diff that changes REL, or None."""
    out, keep, prev = [], False, ""
    for line in patch_text.splitlines(keepends=True):
        if line.startswith("--- "):
            keep = False
        elif line.startswith("+++ "):
            keep = line[4:].split("\t", 1)[0].strip() == "b/" + rel
            if keep:
                out.append(prev)    # the file's "--- " line
        if keep:
            out.append(line)
        prev = line
    return "".join(out) or None


def old_text(name, rel):
    """REL as the base plus the earlier patches of the series leave it."""
    tmp = tempfile.mkdtemp()
    try:
        dst = os.path.join(tmp, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy(os.path.join(BUILD, "base", rel), dst)
        for p in series_before(name):
            with open(os.path.join(REPO, "patches", p)) as f:
                section = file_section(f.read(), rel)
            if section:
                subprocess.run(["patch", "-s", "-p1", "-d", tmp],
                               input=section.encode(), check=True)
        with open(dst) as f:
            return f.readlines()
    finally:
        shutil.rmtree(tmp)


def prepare(name, files):
    for rel in files:
        dst = os.path.join(BUILD, "patch-work", rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(dst, "w") as f:
            f.writelines(old_text(name, rel))
    return 0


def main(argv):
    if len(argv) >= 3 and argv[1] == "--prepare":
        return prepare(argv[2], argv[3:])
    if len(argv) < 5:
        print(__doc__, file=sys.stderr)
        return 2
    name, subject, body, files = argv[1], argv[2], argv[3], argv[4:]
    out = [subject, "", body.strip(), ""]
    for rel in files:
        old = old_text(name, rel)
        with open(os.path.join(BUILD, "patch-work", rel)) as f:
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
