"""meltpot: machine-learning interatomic potentials for liquid metals and alloys.

The library behind the Snakemake workflow: sampling of reference data, descriptors,
feature selection, LAMMPS integration and analysis. Every stage is reachable through
the ``meltpot`` command line (``meltpot --help``).
"""

__version__ = "0.1.0"
