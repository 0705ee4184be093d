"""The shared vocabulary of the command line: one name for one thing in every subcommand.

=====================  ==========================================================================
``--config``           the run's config (YAML); positional ``config`` where a command needs it
``--units``            LAMMPS unit system of the data (metal, real, lj); default: the config's
                       ``units`` when ``--config`` is given, else what the input files say
                       (:func:`meltpot.units.resolve_units`), else metal
``--timestep``         MD time per step (ps in metal units, fs in real, τ in lj); default: the
                       config's ``md.timestep``, else the input files', where a command can use it
``--types TYPE=EL``    LAMMPS atom types → elements; ``--elements EL …`` a list of elements;
                       ``--species EL`` one species out of a table
``--out FILE``         one output file (others beside it with the same stem);
``--out-dir DIR``      an output folder; ``--out-prefix P`` a prefix of several files
``--seed N``           random seed; ``--threads N`` torch threads; ``--no-progress``
=====================  ==========================================================================

Old names stay as deprecated aliases for one release (:func:`add_option` with ``old=``): they
still work, print one line to stderr and are hidden from ``--help``. :class:`HelpFormatter`
shows the default of every option that has one; numeric options state their unit in their help
(tests/test_cli_options.py checks both).
"""

from __future__ import annotations

import argparse
import sys

DEPRECATION = "meltpot: warning: {old} is deprecated, use {new} (the old name goes away in the next release)"


class HelpFormatter(argparse.HelpFormatter):
    """Help with the default of every option that has one, deprecated aliases left out."""

    def _get_help_string(self, action):
        text = action.help or ""
        if text is argparse.SUPPRESS or "%(default)" in text or "default" in text.lower():
            return text
        default = action.default
        if (not action.option_strings or action.required or default is None or default is False
                or default is argparse.SUPPRESS or (isinstance(default, list) and not default)):
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"

    def _format_action_invocation(self, action):
        old = getattr(action, "deprecated", ())
        if not old:
            return super()._format_action_invocation(action)
        kept = action.option_strings
        action.option_strings = [s for s in kept if s not in old]
        try:
            return super()._format_action_invocation(action)
        finally:
            action.option_strings = kept


def _deprecating(base: type[argparse.Action]) -> type[argparse.Action]:
    class Deprecating(base):
        def __init__(self, *args, deprecated=(), **kwargs):
            super().__init__(*args, **kwargs)
            self.deprecated = tuple(deprecated)

        def __call__(self, parser, namespace, values, option_string=None):
            if option_string in self.deprecated:
                new = next(s for s in self.option_strings if s not in self.deprecated)
                print(DEPRECATION.format(old=option_string, new=new), file=sys.stderr)
            super().__call__(parser, namespace, values, option_string)

    Deprecating.__name__ = f"Deprecating{base.__name__}"
    return Deprecating


def add_option(p, *names, old: tuple[str, ...] = (), **kwargs) -> argparse.Action:
    """``p.add_argument(*names, **kwargs)``, plus the deprecated aliases ``old`` (same
    destination; a one-line warning on stderr when used; not shown in ``--help``)."""
    if not old:
        return p.add_argument(*names, **kwargs)
    base = p._registry_get("action", kwargs.pop("action", None), None) or p._registry_get("action", None)
    if isinstance(base, str) or not isinstance(base, type):
        raise TypeError(f"add_option: unknown action for {names}")
    return p.add_argument(*names, *old, action=_deprecating(base), deprecated=old, **kwargs)


def command(subparsers, name: str, help: str, **kwargs) -> argparse.ArgumentParser:  # noqa: A002
    """A subcommand with :class:`HelpFormatter` (its description defaults to ``help``)."""
    kwargs.setdefault("description", help)
    return subparsers.add_parser(name, help=help, formatter_class=HelpFormatter, **kwargs)


def group(subparsers, name: str, help: str):  # noqa: A002
    """A command group (``meltpot NAME …``); returns its subparsers."""
    p = command(subparsers, name, help)
    return p.add_subparsers(dest=f"{name.replace('-', '_')}_command", required=True)


# ----------------------------------------------------------------------------- common options
def add_threads(p) -> None:
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")


def add_progress(p) -> None:
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_types(p, nargs="+") -> None:
    p.add_argument("--types", nargs=nargs, metavar="TYPE=EL", help="LAMMPS atom types → elements, e.g. --types 1=Al 2=Ni")


def add_frame_range(p, what: str = "frame") -> None:
    p.add_argument("--start", type=int, default=0, help=f"first {what} (0-based)")
    p.add_argument("--stop", type=int, default=None, help=f"stop before this {what} (default: the last)")
    p.add_argument("--step", type=int, default=1, help=f"use every STEP-th {what}")


def set_threads(n: int | None) -> None:
    """``torch.set_num_threads(n)`` when ``--threads`` was given."""
    if n:
        import torch

        torch.set_num_threads(n)


# ----------------------------------------------------------------------------- units, timestep, run config
#: LAMMPS unit systems and their time unit (for plot labels)
TIME_UNIT = {"metal": "ps", "real": "fs", "lj": "τ", "si": "s"}
UNITS_HELP = ("LAMMPS unit system of the data (metal: Å, ps, eV, bar, K; real: Å, fs, kcal/mol, atm, K; lj: reduced; "
              "default: the --config's units, else what the input files state (dump header, log, in.lammps beside "
              "them), else metal)")


def add_units(p, choices=("lj", "metal", "real")) -> None:
    p.add_argument("--units", choices=sorted(choices), default=None, help=UNITS_HELP)


def add_config(p) -> None:
    p.add_argument("--config", help="the run's config (YAML): the default --units, --timestep (md.timestep) and "
                                    "--types (its elements, type k = element k)")


def add_timestep(p, default_help: str, old: tuple[str, ...] = ()) -> None:
    """``--timestep``: MD time per step of the files' step counter."""
    add_option(p, "--timestep", old=old, type=float, default=None,
               help=f"MD time per step of the files' Step/TIMESTEP counter (ps in metal units, fs in real, τ in lj; "
                    f"default: {default_help})")
