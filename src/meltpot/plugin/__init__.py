"""The LAMMPS pair style ``meltpot`` (C++ plugin running a TorchScript HDNNP) and its build."""
