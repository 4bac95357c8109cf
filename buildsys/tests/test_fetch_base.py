#!/usr/bin/python3
"""fetch-base.sh refuses a missing or altered base with one clear line."""

import os
import shutil
import subprocess
import tempfile
import unittest

BUILDSYS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FETCH = os.path.join(BUILDSYS, "fetch-base.sh")


def base_files():
    with open(os.path.join(BUILDSYS, "base.sha256")) as f:
        return [line.split()[1] for line in f if line.strip()]


class FetchBaseTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        self.src = os.path.join(self.tmp, "base-files")
        os.mkdir(self.src)
        self.dest = os.path.join(self.tmp, "build", "base")

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def fetch(self):
        env = dict(os.environ, COLO_BASE_DIR=self.src)
        return subprocess.run(["sh", FETCH, self.dest], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=60)

    def test_altered_base_is_refused(self):
        for name in base_files():
            with open(os.path.join(self.src, name), "w") as f:
                f.write("not the real " + name)
        r = self.fetch()
        self.assertNotEqual(r.returncode, 0)
        errors = [l for l in r.stderr.splitlines() if l.startswith("fetch-base:")]
        self.assertEqual(len(errors), 1, r.stderr)
        self.assertIn("do not match buildsys/base.sha256", errors[0])
        self.assertFalse(os.path.exists(os.path.join(self.dest, ".colo-base-ok")))

    def test_missing_base_file_is_named(self):
        dsc = [n for n in base_files() if n.endswith(".dsc")][0]
        with open(os.path.join(self.src, dsc), "w") as f:
            f.write("stub")
        r = self.fetch()
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertIn("is missing", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=1)
