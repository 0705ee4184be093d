"""``meltpot`` command line: every workflow step as a subcommand (Snakemake rules call these).

Errors that meltpot raises on purpose print one line naming the file/frame/key at fault
and exit with status 2; nothing already written is overwritten by a failing step.

Shape (docs/architecture.md): one module per stage in this package, each with
``add_commands(subparsers)`` registering that stage's subcommands; a command parses its
arguments and calls the library, which never imports this package. This module only
assembles the stages (:func:`stages`, in the order ``meltpot --help`` lists them);
:mod:`.options` holds the option names and help conventions every stage shares.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ..errors import MeltpotError



def stages() -> tuple:
    """The stage modules of this package, in the order ``meltpot --help`` lists them; each has
    ``add_commands(subparsers)``."""
    from . import active, analyze, config, data, descriptors, export, md, plugin, report, sample, select, train

    return (config, sample, data, descriptors, train, select, active, analyze, md, export, plugin, report)


def build_parser() -> argparse.ArgumentParser:
    from .options import HelpFormatter

    p = argparse.ArgumentParser(prog="meltpot", description=__doc__.splitlines()[0], formatter_class=HelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)
    for stage in stages():
        stage.add_commands(sub)
    return p


def main(argv=None) -> int:
    from ..reproducibility import pin_cpu_kernels

    if "torch" not in sys.modules:   # before the stages import torch: the same kernels on every x86 machine
        pin_cpu_kernels()            # (once torch is loaded, pinning would only set this process apart from its children)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        return args.func(args)
    except MeltpotError as exc:
        print(f"meltpot: error: {exc}", file=sys.stderr)
        return 2
