#!/usr/bin/env bash
# Install the DFT reference engines into a venv: CP2K (Debian package, ASE's cp2k_shell) and
# GPAW (built from PyPI against Debian's libxc, OpenBLAS and FFTW; the gpaw-data wheel brings the
# PAW setups, so nothing is downloaded at run time). Idempotent: does nothing when both work.
#   usage: scripts/install_dft.sh VENV_PYTHON
set -euo pipefail
PY=${1:?usage: $0 VENV_PYTHON}
cd "$(dirname "$0")/.."
GPAW_VERSION=26.7.0
GPAW_DATA_VERSION=1.2.1
PACKAGES="libxc-dev libopenblas-dev liblapack-dev libfftw3-dev pkg-config cp2k cp2k-data"

if "$PY" -c "import gpaw, gpaw_data" 2>/dev/null && command -v cp2k_shell >/dev/null; then
    echo "GPAW $("$PY" -c 'import gpaw; print(gpaw.__version__)') and CP2K ($(command -v cp2k_shell)) already installed"
    exit 0
fi
missing=""
for p in $PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    echo "apt-get install$missing"
    $SUDO apt-get install -y -q $missing >/dev/null || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q $missing >/dev/null; }
fi
# GPAW's build needs g++ for its C++ sources and the libraries named in the siteconfig
GPAW_CONFIG="$PWD/envs/gpaw-siteconfig.py" "$PY" -m pip install --quiet "gpaw==$GPAW_VERSION" "gpaw-data==$GPAW_DATA_VERSION"
"$PY" -c "import gpaw, gpaw_data; print('GPAW', gpaw.__version__, 'installed')"
command -v cp2k_shell >/dev/null && echo "CP2K: $(command -v cp2k_shell)"
