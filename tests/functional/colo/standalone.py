"""Run a COLO whole-system script outside meson (make soak, benchmarks).

meson gives the tests their environment; a script started by hand calls
prepare(BUILD) first, which sets the same variables from the build tree,
makes the base's python/qemu importable and builds the test guest.
"""

import os
import subprocess
import sys


def prepare(build):
    build = os.path.abspath(build)
    qemu = os.path.join(build, "qemu")
    binary = os.path.join(qemu, "qemu-system-x86_64")
    if not os.path.exists(binary):
        sys.exit(f"{binary} is missing: run 'make build' first")
    subprocess.run(["ninja", "-C", qemu, "colo-guest"], check=True,
                   stdout=subprocess.DEVNULL)
    os.environ["QEMU_BINARY"] = binary
    os.environ["QEMU_IMG"] = os.path.join(qemu, "qemu-img")
    os.environ["QEMU_COLO"] = os.path.join(qemu, "tools", "colo",
                                           "qemu-colo")
    os.environ["COLO_GUEST_DIR"] = os.path.join(qemu, "tests", "functional",
                                                "colo")
    sys.path.insert(0, os.path.join(build, "src", "python"))
