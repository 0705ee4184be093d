"""Exports of trained HDNNPs for other codes: TorchScript (the LAMMPS plugin), LAMMPS ML-IAP
unified (KOKKOS/GPU builds) and n2p2 (``pair_style hdnnp``)."""


def EXPORT_CLI_MODULES():  # noqa: N802 - a registry, read by meltpot.cli
    """The modules that add ``meltpot export …`` subcommands (each has ``add_commands``)."""
    from . import cli_mliap, cli_n2p2, cli_torchscript

    return (cli_torchscript, cli_mliap, cli_n2p2)
