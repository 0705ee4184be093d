"""Analysis of MD trajectories and logs: readers (:mod:`.trajectory`), structure (g(r), S(q)),
dynamics estimators and transport from files, local order, nucleation, nucleation rates
(:mod:`.rates`) and thermo-log series.
The ``meltpot analyze`` commands built on them are in :mod:`meltpot.cli.analyze`."""
