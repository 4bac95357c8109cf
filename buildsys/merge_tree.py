#!/usr/bin/python3
"""Build the merged QEMU source tree: base, minus its COLO, plus ours.

    merge_tree.py REPO BASE OUT MANIFEST

BASE is the unpacked pristine base, OUT the merged tree that configure and
ninja work on.  The merged tree is first assembled in OUT.stage (hard links
to BASE, so this is cheap), then only the files whose bytes differ are copied
into OUT.  Unchanged files keep their timestamps, so ninja rebuilds only what
an edit really touched.  When none of the inputs changed, nothing is done.

MANIFEST names every COLO path and where the merged tree's copy came from.
The step fails if any file of the merged tree has the same bytes as one of
the base's COLO files.
"""

import hashlib
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from colo_files import BASE_COLO_FILES, OVERLAY_ROOTS  # noqa: E402


class MergeError(Exception):
    pass


def overlay_files(repo):
    """Repository files under the overlay roots, as repo-relative paths."""
    if os.path.isdir(os.path.join(repo, ".git")):
        out = subprocess.run(
            ["git", "-C", repo, "ls-files", "-co", "--exclude-standard", "-z",
             "--"] + list(OVERLAY_ROOTS),
            check=True, stdout=subprocess.PIPE).stdout.decode()
        files = [f for f in out.split("\0") if f]
    else:
        files = []
        for root in OVERLAY_ROOTS:
            top = os.path.join(repo, root)
            if os.path.isfile(top):
                files.append(root)
            for dirpath, _, names in os.walk(top):
                for n in names:
                    files.append(os.path.relpath(os.path.join(dirpath, n), repo))
    return sorted(f for f in files if os.path.isfile(os.path.join(repo, f)))


def read_series(repo):
    series = os.path.join(repo, "patches", "series")
    if not os.path.exists(series):
        return []
    names = []
    with open(series) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                names.append(line)
    return names


def patched_paths(patch_file):
    """Paths a unified diff (-p1) creates or modifies."""
    paths = []
    with open(patch_file, errors="replace") as f:
        for line in f:
            if line.startswith("+++ "):
                target = line[4:].split("\t", 1)[0].strip()
                if target != "/dev/null":
                    paths.append(target.split("/", 1)[1])
    return paths


def digest_inputs(repo, base, files, patches):
    h = hashlib.sha256()
    for path in [os.path.abspath(__file__),
                 os.path.join(os.path.dirname(os.path.abspath(__file__)),
                              "colo_files.py"),
                 os.path.join(base, ".colo-base-ok")]:
        h.update(path.encode())
        with open(path, "rb") as f:
            h.update(f.read())
    for rel in files + ["patches/" + p for p in patches]:
        h.update(rel.encode() + b"\0")
        with open(os.path.join(repo, rel), "rb") as f:
            h.update(f.read())
        h.update(b"\0")
    return h.hexdigest()


def copy_fresh(src, dst):
    """Copy without touching a hard-linked original, mtime left at now."""
    if os.path.lexists(dst):
        os.remove(dst)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.copyfile(src, dst)
    shutil.copymode(src, dst)


def assemble_stage(repo, base, stage, files, patches):
    if os.path.exists(stage):
        shutil.rmtree(stage)
    os.makedirs(os.path.dirname(stage), exist_ok=True)
    r = subprocess.run(["cp", "-al", base, stage], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    if r.returncode != 0:
        raise MergeError("cannot link the base into " + stage + ": "
                         + r.stdout.decode(errors="replace"))
    os.remove(os.path.join(stage, ".colo-base-ok"))
    for rel in BASE_COLO_FILES:
        p = os.path.join(stage, rel)
        if os.path.lexists(p):
            os.remove(p)
    for rel in files:
        copy_fresh(os.path.join(repo, rel), os.path.join(stage, rel))
    for name in patches:
        patch_file = os.path.join(repo, "patches", name)
        # patch(1) may rewrite in place; give each target its own inode first.
        for rel in patched_paths(patch_file):
            p = os.path.join(stage, rel)
            if os.path.isfile(p):
                copy_fresh(p, p + ".unlink")
                os.replace(p + ".unlink", p)
        with open(patch_file, "rb") as f:
            r = subprocess.run(["patch", "-p1", "--batch", "--forward",
                                "--no-backup-if-mismatch", "-s", "-d", stage],
                               stdin=f, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
        if r.returncode != 0:
            raise MergeError(f"patches/{name} does not apply to the base:\n"
                             + r.stdout.decode(errors="replace"))


def same_bytes(a, b):
    try:
        if os.path.getsize(a) != os.path.getsize(b):
            return False
    except OSError:
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x = fa.read(1 << 20)
            if x != fb.read(1 << 20):
                return False
            if not x:
                return True


def sync_tree(stage, out):
    """Make OUT equal STAGE, writing only files whose bytes differ."""
    wanted = set()
    changed = 0
    for dirpath, dirnames, names in os.walk(stage):
        rel_dir = os.path.relpath(dirpath, stage)
        os.makedirs(os.path.join(out, rel_dir), exist_ok=True)
        for n in names:
            rel = os.path.normpath(os.path.join(rel_dir, n))
            wanted.add(rel)
            s, d = os.path.join(stage, rel), os.path.join(out, rel)
            if os.path.islink(s):
                if not os.path.islink(d) or os.readlink(d) != os.readlink(s):
                    if os.path.lexists(d):
                        os.remove(d)
                    os.symlink(os.readlink(s), d)
                    changed += 1
            elif not same_bytes(s, d):
                copy_fresh(s, d)
                changed += 1
            elif os.stat(s).st_mode != os.stat(d).st_mode:
                shutil.copymode(s, d)
    for dirpath, _, names in os.walk(out):
        for n in names:
            rel = os.path.normpath(os.path.relpath(os.path.join(dirpath, n), out))
            if rel not in wanted and not rel.startswith(".colo-"):
                os.remove(os.path.join(out, rel))
                changed += 1
    return changed


def colo_hashes(base):
    hashes = {}
    for rel in BASE_COLO_FILES:
        p = os.path.join(base, rel)
        if os.path.isfile(p):
            with open(p, "rb") as f:
                hashes[hashlib.sha256(f.read()).hexdigest()] = rel
    return hashes


def find_base_colo_copies(base, tree):
    """Files of TREE whose bytes equal one of the base's COLO files."""
    hashes = colo_hashes(base)
    sizes = {os.path.getsize(os.path.join(base, rel))
             for rel in hashes.values()}
    found = []
    for dirpath, _, names in os.walk(tree):
        for n in names:
            p = os.path.join(dirpath, n)
            if os.path.islink(p) or os.path.getsize(p) not in sizes:
                continue
            with open(p, "rb") as f:
                h = hashlib.sha256(f.read()).hexdigest()
            if h in hashes:
                found.append((os.path.relpath(p, tree), hashes[h]))
    return found


def write_manifest(path, files, patches, repo):
    ours = set(files)
    lines = ["# COLO paths of the merged tree and where each comes from.",
             "# base-removed: the base's file was deleted and nothing replaces it",
             "# project: the file is the project's own, copied from the repository",
             ""]
    for rel in BASE_COLO_FILES:
        origin = "project" if rel in ours else "base-removed"
        lines.append(f"{origin:13} {rel}")
    lines.append("")
    lines.append("# every project file in the merged tree")
    for rel in files:
        lines.append(f"project       {rel}")
    lines.append("")
    lines.append("# patches applied to the base's core files, in order")
    for name in patches:
        touched = " ".join(patched_paths(os.path.join(repo, "patches", name)))
        lines.append(f"patch         {name}: {touched}")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)


def main(argv):
    if len(argv) != 5:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    repo, base, out, manifest = (os.path.abspath(a) for a in argv[1:])
    files = overlay_files(repo)
    patches = read_series(repo)
    for name in patches:
        if not os.path.isfile(os.path.join(repo, "patches", name)):
            print(f"merge-tree: patches/series names {name}, which is missing",
                  file=sys.stderr)
            return 1
    stamp = os.path.join(out, ".colo-inputs")
    digest = digest_inputs(repo, base, files, patches)
    try:
        with open(stamp) as f:
            if f.read().strip() == digest and os.path.exists(manifest):
                return 0
    except OSError:
        pass

    stage = out + ".stage"
    try:
        assemble_stage(repo, base, stage, files, patches)
        copies = find_base_colo_copies(base, stage)
        if copies:
            raise MergeError("the merged tree holds the base's own COLO code: "
                             + ", ".join(f"{p} (= base {c})" for p, c in copies))
        os.makedirs(out, exist_ok=True)
        changed = sync_tree(stage, out)
    except MergeError as e:
        print(f"merge-tree: {e}", file=sys.stderr)
        return 1
    finally:
        if os.path.exists(stage):
            shutil.rmtree(stage)
    write_manifest(manifest, files, patches, repo)
    with open(stamp, "w") as f:
        f.write(digest + "\n")
    print(f"merge-tree: {changed} file(s) updated in {os.path.relpath(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
