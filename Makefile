# COLO for QEMU.  `make demo` builds QEMU with COLO and shows it working;
# `make check` installs what is missing, builds and runs every test.

BUILD ?= build
PY := /usr/bin/python3

.PHONY: all build check demo deps faults fuzz soak cluster-lab cluster-test \
	bench-net bench-block bench-verify bench-guest-net bench-cluster \
	bench-checkpoint clean help

all: build

help:
	@echo "make deps    install the Debian packages the build and tests need"
	@echo "make build   fetch the base, merge the overlay, build QEMU (default)"
	@echo "make demo    build, run a guest under COLO, kill the primary, see it survive"
	@echo "make check   deps + build + every test; ends with 'N passed, N failed'"
	@echo "make faults  the COLO fault matrix: every fault, phase and survivor"
	@echo "make fuzz    run the libFuzzer targets side by side, each for FUZZ_RUNS"
	@echo "             executions (default 10 million) or FUZZ_SECONDS (default 1800)"
	@echo "make cluster-lab  a two-node Pacemaker cluster in namespaces: failover, fencing"
	@echo "make cluster-test  a COLO guest under Pacemaker (ocf:qemu:colo) on that cluster"
	@echo "             survives a crash, a reboot and a partition of its nodes"
	@echo "make bench-cluster  Pacemaker failover and reprotection times of a COLO guest"
	@echo "make bench-net  colo-compare throughput and added latency (figures)"
	@echo "make bench-guest-net  a Linux guest's HTTP, echo and bulk TCP, with and without COLO"
	@echo "make bench-block  print the write overhead of disk replication"
	@echo "make bench-verify  what colo-verify adds to a checkpoint's pause"
	@echo "make bench-checkpoint  checkpoint pauses, ours against the unmodified base"
	@echo "             (builds the base in $(BUILD)/pristine; it runs under KVM only)"
	@echo "make soak    SOAK_MINUTES (default 30) of a Linux guest under COLO"
	@echo "make clean   remove $(BUILD)/ (the ccache cache stays)"

deps:
	@buildsys/install-deps.sh

build:
	@buildsys/build.sh $(BUILD)

demo: deps
	@buildsys/build.sh $(BUILD)
	@$(PY) buildsys/demo.py $(BUILD)

check: deps
	@buildsys/build.sh $(BUILD)
	@$(PY) buildsys/run-tests.py $(BUILD)

# Not part of `make check`: 120 COLO pairs of the qtest matrix and 12 of the
# Linux guest, one fault each.
faults: deps
	@buildsys/build.sh $(BUILD)
	@$(PY) buildsys/run-tests.py $(BUILD) colo-faults

# Both targets at once, each until FUZZ_RUNS executions or FUZZ_SECONDS.
FUZZ_RUNS ?= 10000000
FUZZ_SECONDS ?= 1800
fuzz: deps
	@buildsys/build.sh $(BUILD)
	@buildsys/fuzz.sh $(BUILD) $(FUZZ_SECONDS) $(FUZZ_RUNS)

# The namespace cluster (Corosync + Pacemaker) and its lab fencing, alone.
cluster-lab: deps
	@$(PY) tests/cluster/test_cluster_lab.py

# The resource agent ocf:qemu:colo on that cluster, with a replicated guest.
cluster-test: deps
	@buildsys/build.sh $(BUILD)
	@$(PY) tests/cluster/test_colo_cluster.py --build $(BUILD)

bench-cluster: deps
	@buildsys/build.sh $(BUILD)
	@$(PY) bench/colo-cluster-failover.py $(BUILD)

bench-net: deps
	@buildsys/build.sh $(BUILD)
	@$(PY) bench/colo-compare-throughput.py $(BUILD)

bench-guest-net: deps
	@buildsys/build.sh $(BUILD)
	@$(PY) bench/colo-guest-network.py $(BUILD)

bench-block: deps
	@buildsys/build.sh $(BUILD)
	@$(PY) bench/block-replication-overhead.py $(BUILD)

bench-verify: deps
	@buildsys/build.sh $(BUILD)
	@$(PY) bench/colo-verify-cost.py $(BUILD)

bench-checkpoint: deps
	@buildsys/build.sh $(BUILD)
	@buildsys/build-base.sh $(BUILD)
	@$(PY) bench/colo-checkpoint.py $(BUILD)

# Not part of `make check`: half an hour of COLO with verification on.
SOAK_MINUTES ?= 30
soak: deps
	@buildsys/build.sh $(BUILD)
	@$(PY) tests/functional/colo/soak.py $(BUILD) --minutes $(SOAK_MINUTES)

clean:
	rm -rf $(BUILD)
