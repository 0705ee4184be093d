"""``meltpot analyze …``: structure, dynamics, local order and nucleation, thermodynamics of
trajectories and logs (:mod:`meltpot.analysis`). One module per command group, each with
``add_commands(subparsers)`` registering its commands on the ``analyze`` group:

* :mod:`.structure`: ``rdf``, ``sq`` (:mod:`meltpot.analysis.structure`);
* :mod:`.dynamics`: ``msd``, ``viscosity``, ``interdiffusion``, ``arrhenius``
  (:mod:`meltpot.analysis.transport`, :mod:`meltpot.analysis.dynamics`);
* :mod:`.order`: ``cna``, ``steinhardt``, ``clusters``, ``ttt``, ``rates``
  (:mod:`meltpot.analysis.local_order`, :mod:`meltpot.analysis.nucleation`, :mod:`meltpot.analysis.rates`);
* :mod:`.thermo`: ``enthalpy``, ``enthalpy-drop``, ``two-phase`` (:mod:`meltpot.analysis.thermo`).
"""

from __future__ import annotations

from ..options import group


def add_commands(sub) -> None:
    from . import dynamics, order, structure, thermo

    asub = group(sub, "analyze", "structure, dynamics, local order and nucleation of trajectories")
    for module in (structure, dynamics, order, thermo):
        module.add_commands(asub)
