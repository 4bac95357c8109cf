"""Which paths of the base belong to its own COLO implementation.

The merge step deletes these from the base before our overlay goes on, and
the checks refuse any build in which one of them, or a file with the same
bytes, would reach the compiler.
"""

import os

BASE_COLO_FILES = (
    "migration/colo.c",
    "migration/colo-failover.c",
    "include/migration/colo.h",
    "include/migration/failover.h",
    "replication.c",
    "include/block/replication.h",
    "block/replication.c",
    "net/colo.c",
    "net/colo.h",
    "net/colo-compare.c",
    "net/colo-compare.h",
    "net/filter-mirror.c",
    "net/filter-rewriter.c",
    "tests/unit/test-replication.c",
    "docs/COLO-FT.txt",
    "docs/colo-proxy.txt",
    "docs/block-replication.txt",
)

# Top-level paths of the repository that mirror QEMU's tree and are copied
# over the base.  Everything else in the repository (buildsys/, guest/,
# bench/, patches/, the README) is project tooling and stays out of QEMU.
OVERLAY_ROOTS = (
    "block",
    "docs",
    "include",
    "migration",
    "net",
    "qapi",
    "replication.c",
    "tests",
    "tools/colo",
)


def overlay_files(repo, suffixes):
    """The overlay's files whose names end with one of @suffixes, as paths
    relative to @repo, sorted."""
    found = []
    for root in OVERLAY_ROOTS:
        path = os.path.join(repo, root)
        if os.path.isfile(path):
            found.append(root)
            continue
        for dirpath, _, names in os.walk(path):
            found += [os.path.relpath(os.path.join(dirpath, n), repo)
                      for n in names]
    return sorted(f for f in found if f.endswith(tuple(suffixes)))
