#!/usr/bin/python3
"""Tests of the overlay machinery on a small fake base and repository."""

import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

BUILDSYS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, BUILDSYS)
import merge_tree  # noqa: E402
import check_no_base_colo as check  # noqa: E402

BASE_COLO_C = "/* the base's own COLO checkpoint loop */\nint colo_loop;\n"


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def read(path):
    with open(path) as f:
        return f.read()


class MergeTreeTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        root = self.tmp.name
        self.base = os.path.join(root, "base")
        self.repo = os.path.join(root, "repo")
        self.build = os.path.join(root, "build")
        self.src = os.path.join(self.build, "src")
        self.manifest = os.path.join(self.build, "colo-manifest.txt")
        write(os.path.join(self.base, ".colo-base-ok"), "")
        write(os.path.join(self.base, "migration/migration.c"), "int core;\n")
        write(os.path.join(self.base, "migration/colo.c"), BASE_COLO_C)
        write(os.path.join(self.base, "net/filter-mirror.c"), "int mirror;\n")
        write(os.path.join(self.base, "net/meson.build"), "files('a.c')\n")
        from colo_files import BASE_COLO_FILES
        for rel in BASE_COLO_FILES:
            p = os.path.join(self.base, rel)
            if not os.path.exists(p):
                write(p, f"/* base {rel} */\n")
        write(os.path.join(self.repo, "net/colo-compare.h"), "/* ours */\n")
        write(os.path.join(self.repo, "buildsys/not-overlaid.sh"), "true\n")
        write(os.path.join(self.repo, "patches/series"),
              "# comment\nnet-meson.patch\n")
        write(os.path.join(self.repo, "patches/net-meson.patch"),
              "Subject line\n\n--- a/net/meson.build\n+++ b/net/meson.build\n"
              "@@ -1 +1 @@\n-files('a.c')\n+files('b.c')\n")

    def tearDown(self):
        self.tmp.cleanup()

    def merge(self):
        return subprocess.run(
            [sys.executable, os.path.join(BUILDSYS, "merge_tree.py"),
             self.repo, self.base, self.src, self.manifest],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            universal_newlines=True)

    def test_overlay_removes_base_colo_and_adds_ours(self):
        r = self.merge()
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertFalse(os.path.exists(os.path.join(self.src, "migration/colo.c")))
        self.assertFalse(os.path.exists(os.path.join(self.src, "net/filter-mirror.c")))
        self.assertEqual(read(os.path.join(self.src, "net/colo-compare.h")), "/* ours */\n")
        self.assertEqual(read(os.path.join(self.src, "migration/migration.c")), "int core;\n")
        self.assertEqual(read(os.path.join(self.src, "net/meson.build")), "files('b.c')\n")
        self.assertFalse(os.path.exists(os.path.join(self.src, "buildsys")))
        manifest = read(self.manifest)
        self.assertIn("base-removed  migration/colo.c", manifest)
        self.assertIn("project       net/colo-compare.h", manifest)
        self.assertIn("patch         net-meson.patch: net/meson.build", manifest)
        # The pristine base is never written through the hard links.
        self.assertEqual(read(os.path.join(self.base, "net/meson.build")), "files('a.c')\n")

    def test_second_merge_rewrites_only_changed_files(self):
        self.assertEqual(self.merge().returncode, 0)
        core = os.path.join(self.src, "migration/migration.c")
        ours = os.path.join(self.src, "net/colo-compare.h")
        patched = os.path.join(self.src, "net/meson.build")
        before = {p: os.stat(p).st_mtime_ns for p in (core, ours, patched)}
        time.sleep(0.05)
        write(os.path.join(self.repo, "net/colo-compare.h"), "/* ours, v2 */\n")
        r = self.merge()
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertIn("1 file(s) updated", r.stdout)
        self.assertEqual(os.stat(core).st_mtime_ns, before[core])
        self.assertEqual(os.stat(patched).st_mtime_ns, before[patched])
        self.assertNotEqual(os.stat(ours).st_mtime_ns, before[ours])
        self.assertEqual(read(ours), "/* ours, v2 */\n")

    def test_removed_overlay_file_leaves_merged_tree(self):
        self.assertEqual(self.merge().returncode, 0)
        os.remove(os.path.join(self.repo, "net/colo-compare.h"))
        self.assertEqual(self.merge().returncode, 0)
        self.assertFalse(os.path.exists(os.path.join(self.src, "net/colo-compare.h")))

    def test_copy_of_base_colo_file_is_refused(self):
        write(os.path.join(self.repo, "migration/colo-copy.c"), BASE_COLO_C)
        r = self.merge()
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("migration/colo-copy.c (= base migration/colo.c)", r.stdout)

    def test_patch_that_does_not_apply_names_itself(self):
        write(os.path.join(self.repo, "patches/net-meson.patch"),
              "--- a/net/meson.build\n+++ b/net/meson.build\n"
              "@@ -1 +1 @@\n-files('zzz.c')\n+files('b.c')\n")
        r = self.merge()
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("patches/net-meson.patch does not apply", r.stdout)

    def test_missing_patch_is_an_error(self):
        write(os.path.join(self.repo, "patches/series"), "gone.patch\n")
        r = self.merge()
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("gone.patch, which is missing", r.stdout)


class CheckNoBaseColoTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.build = self.tmp.name
        self.src = os.path.join(self.build, "src")
        from colo_files import BASE_COLO_FILES
        for rel in BASE_COLO_FILES:
            write(os.path.join(self.build, "base", rel), f"/* base {rel} */\n")
        write(os.path.join(self.src, "net/net.c"), "int net;\n")
        write(os.path.join(self.build, "colo-manifest.txt"),
              "project       net/colo-compare.h\n")
        self.compiled = ["net/net.c"]

    def tearDown(self):
        self.tmp.cleanup()

    def problems(self):
        cc = [{"directory": os.path.join(self.build, "qemu"),
               "file": "../src/" + f} for f in self.compiled]
        write(os.path.join(self.build, "qemu/compile_commands.json"), json.dumps(cc))
        return check.problems(self.build)

    def test_clean_tree_passes(self):
        write(os.path.join(self.src, "net/colo-compare.h"), "/* ours */\n")
        self.assertEqual(self.problems(), [])

    def test_base_colo_path_not_ours_fails(self):
        write(os.path.join(self.src, "net/colo.c"), "/* something */\n")
        self.assertIn("net/colo.c is in the merged tree but is not the project's",
                      self.problems())

    def test_base_colo_bytes_anywhere_fail(self):
        write(os.path.join(self.src, "hw/elsewhere.c"), "/* base net/colo.c */\n")
        self.assertIn("hw/elsewhere.c has the bytes of the base's net/colo.c",
                      self.problems())

    def test_compiled_base_colo_path_fails(self):
        self.compiled.append("migration/colo.c")
        self.assertIn("migration/colo.c is compiled but is not the project's",
                      self.problems())


if __name__ == "__main__":
    unittest.main(verbosity=1)
