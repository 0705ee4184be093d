"""Active learning: a committee of HDNNPs explores in LAMMPS, its disagreement picks frames, the
reference labels them, the committee is retrained on the grown dataset, and the loop repeats.

One iteration ``i`` (folder ``results/<run_id>/active/iter_<i>/``, rules in
``workflow/rules/active.smk``):

1. dataset: the initial frames plus every frame labelled by iterations < i (a new index per
   iteration; the earlier ones are never modified), with a fixed held-out test set;
2. committee: K members trained in parallel jobs, each with its own seed and its own
   train/validation split (warm-started from the member of iteration i − 1);
3. exploration: MD jobs with the committee in LAMMPS (the pair style integrates the mean and
   writes the deviation), :mod:`.explore`;
4. selection: frames whose force deviation lies in the trust window become candidates, at most
   ``max_candidates`` spread over the jobs and in descriptor space, :mod:`.select`; this step also
   decides whether the loop has converged;
5. labelling: the candidates' single points with the reference (``meltpot label run``).

Modules: :mod:`.settings` (the config block and the exploration jobs), :mod:`.data` (held-out
set and member splits), :mod:`.explore`, :mod:`.select`, :mod:`.report` (committee errors on the
held-out set, the iteration table and plots).
"""
