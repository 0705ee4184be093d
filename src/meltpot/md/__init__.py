"""MD protocols as LAMMPS input scripts driven from the config (``md`` section).

* :mod:`.potential`: the interaction as LAMMPS commands (:class:`Potential`);
* :mod:`.protocols`: one renderer per protocol (nvt, npt, nph, melt_quench, ramp,
  two_phase, nucleation);
* :mod:`.structure`: starting structures as LAMMPS data files;
* :mod:`.plan`: config (+ overrides) → settings, structure and script in a run folder;
* :mod:`.runner`: the ``lmp`` subprocess, progress and failure detection (:class:`MDError`);
* :mod:`.execute`: run a protocol, write ``thermo.csv`` and ``summary.json``;
* :mod:`.minimize`: inherent structures of dump frames;
* :mod:`.compare`: reference vs ML runs over replicas (``meltpot md compare``).

The commands (``meltpot md run|render|check|compare``) are in :mod:`meltpot.cli.md`.
"""

from .potential import Potential
from .runner import MDError

__all__ = ["Potential", "MDError"]
