"""Exports of trained HDNNPs for other codes: TorchScript (the LAMMPS plugin), LAMMPS ML-IAP
unified (KOKKOS/GPU builds) and n2p2 (``pair_style hdnnp``)."""

