#!/usr/bin/python3
"""Run every COLO test and print one closing line: N passed, N failed.

    run-tests.py BUILD [SUITE]

A thin runner over `meson test --suite SUITE` (default: colo) in BUILD/qemu,
plus the checks of the build itself (buildsys/tests/) and, with the colo
suite, the cluster programs (tests/cluster/).  Meson runs the unit
tests, qtests and functional tests; this script adds the build checks,
counts the results of both, names every skipped test with its reason and
exits non-zero when anything failed or nothing ran.
"""

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"

PASSED = {"OK", "EXPECTEDFAIL"}
FUZZ_BRIEF_SECONDS = 20
CLUSTER_TIMEOUT_S = 600
SKIPPED = {"SKIP"}


def skip_reason(stdout):
    """The reason a test gave for skipping, from its own output."""
    for line in reversed((stdout or "").splitlines()):
        line = line.strip()
        if line.startswith("SKIP:"):
            return line[5:].strip()
        if line.startswith("ok ") and "# SKIP" in line:
            return line.split("# SKIP", 1)[1].strip()
    return "no reason given"


def run_build_checks(build):
    """The build-tooling tests and the check of the real build tree."""
    results = []
    tests_dir = os.path.join(HERE, "tests")
    for name in sorted(os.listdir(tests_dir)):
        if name.startswith("test_") and name.endswith(".py"):
            r = subprocess.run([PY, os.path.join(tests_dir, name)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               universal_newlines=True)
            results.append(("buildsys/" + name[:-3], r.returncode, r.stdout))
    r = subprocess.run([PY, os.path.join(HERE, "check_no_base_colo.py"), build],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    results.append(("build/no-base-colo-in-tree", r.returncode, r.stdout))
    r = subprocess.run([PY, os.path.join(HERE, "check-overlay-compiled.py"),
                        build], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True)
    results.append(("build/overlay-compiled", r.returncode, r.stdout))
    # -Werror for our sources only: the base is built without it.
    r = subprocess.run([PY, os.path.join(HERE, "check-overlay-werror.py"),
                        build], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True)
    results.append(("build/overlay-werror", r.returncode, r.stdout))
    # QEMU's coding style, on our sources and patches alike.
    r = subprocess.run([PY, os.path.join(HERE, "checkpatch.py"), build],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    results.append(("style/checkpatch", r.returncode, r.stdout))
    # The manual, Sphinx warnings as errors, with the COLO pages in it.
    r = subprocess.run([os.path.join(HERE, "check-docs.sh"), build],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    results.append(("docs/manual", r.returncode, r.stdout))
    # A short fuzzing run of each target; `make fuzz` runs them for longer.
    r = subprocess.run([os.path.join(HERE, "fuzz.sh"), build,
                        str(FUZZ_BRIEF_SECONDS)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    results.append((f"fuzz/colo-net-{FUZZ_BRIEF_SECONDS}s", r.returncode,
                    r.stdout))

    out = []
    for name, rc, text in results:
        verdict = "OK" if rc == 0 else "FAIL"
        print(f"{verdict:5} {name}", flush=True)
        if rc != 0:
            print(text, flush=True)
        out.append((name, verdict, text))
    return out


def run_cluster_program(path):
    """(verdict, output) of one cluster program.  One that overruns gets
    SIGTERM first, which its lab turns into a clean-up, then SIGKILL."""
    proc = subprocess.Popen([PY, path], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, universal_newlines=True)
    try:
        out, _ = proc.communicate(timeout=CLUSTER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        return "TIMEOUT", f"{out}\nstopped after {CLUSTER_TIMEOUT_S} s"
    return {0: "OK", 77: "SKIP"}.get(proc.returncode, "FAIL"), out


def run_cluster_checks():
    """Programs under tests/cluster/ (real Corosync + Pacemaker daemons in
    namespaces; no QEMU build needed).  Exit 77 is a skip."""
    results = []
    tests_dir = os.path.join(HERE, "..", "tests", "cluster")
    for name in sorted(os.listdir(tests_dir)):
        if name.startswith("test_") and name.endswith(".py"):
            verdict, text = run_cluster_program(os.path.join(tests_dir,
                                                             name))
            print(f"{verdict:5} cluster/{name[:-3]}", flush=True)
            if verdict not in PASSED | SKIPPED:
                print(text, flush=True)
            results.append(("cluster/" + name[:-3], verdict, text))
    return results


def run_meson(build, suite):
    qemu_build = os.path.join(build, "qemu")
    logbase = "colo-check"
    log = os.path.join(qemu_build, "meson-logs", logbase + ".json")
    if os.path.exists(log):
        os.remove(log)
    # The meson that configured the tree, not whichever comes first on PATH.
    meson = os.path.join(qemu_build, "pyvenv", "bin", "meson")
    if not os.path.exists(meson):
        meson = "meson"
    subprocess.run([meson, "test", "-C", qemu_build, "--no-rebuild",
                    "--suite", suite, "--print-errorlogs",
                    "--logbase", logbase])
    results = []
    if os.path.exists(log):
        with open(log) as f:
            for line in f:
                if line.strip():
                    t = json.loads(line)
                    results.append((t["name"], t["result"], t.get("stdout", "")))
    return results


def main(argv):
    if len(argv) not in (2, 3):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    build = os.path.abspath(argv[1])
    suite = argv[2] if len(argv) == 3 else "colo"

    results = run_build_checks(build)
    if suite == "colo":
        results += run_cluster_checks()
    results += run_meson(build, suite)
    passed = [r for r in results if r[1] in PASSED]
    skipped = [r for r in results if r[1] in SKIPPED]
    failed = [r for r in results if r[1] not in PASSED | SKIPPED]

    print()
    for name, _, text in skipped:
        print(f"skipped: {name}: {skip_reason(text)}")
    for name, verdict, _ in failed:
        print(f"failed: {name} ({verdict})")
    line = f"{len(passed)} passed, {len(failed)} failed"
    if skipped:
        line += f", {len(skipped)} skipped"
    print(line)
    if not passed and not failed:
        print("run-tests: no test ran", file=sys.stderr)
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
