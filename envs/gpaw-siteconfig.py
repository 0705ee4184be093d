# GPAW build settings for `make dft` (GPAW_CONFIG points here). GPAW's setup.py executes this
# file with `compiler`, `libraries`, `mpi`, `fftw` ... already defined. Measured on Debian 12
# (see ../shared/design.md): the default compiler call fails on GPAW's C++ sources, so g++;
# no MPI (meltpot runs one single point per process and parallelises over jobs); FFTW and
# OpenBLAS from the apt packages that `make dft` installs.
compiler = 'g++'
mpi = False
fftw = True
libraries += ['fftw3', 'blas']  # noqa: F821  (defined by GPAW's setup.py)
