"""Compiled symmetry functions with analytic derivatives (``acsf_kernel.cpp`` through ctypes).

Force training on cached features needs ``dG[p, f, :] = ∂G[center[p], f] / ∂r_ij[p]`` for every
pair; the torch reference (:class:`SymmetryFunctions`) gives it only by one backward pass per
feature column. The kernel computes G and dG in one pass in plain C++ (double precision), with
exactly the reference's formulas, and its function bookkeeping: :class:`KernelSymmetryFunctions`
reads the union of functions and the column map from a :class:`SymmetryFunctions` of the same
feature set, so G has the reference's layout (per centre element its first F_e columns, zeros
after).

The library is built once with g++ (``-O3``, no ``-march=native``, so a cache shared by machines
stays valid) into ``$MELTPOT_KERNEL_DIR`` or ``~/.cache/meltpot/kernel``, in a folder keyed by
the source, the flags and the compiler version; a lock file keeps parallel jobs from compiling
the same key twice. OpenMP is used when the compiler has it (``threads`` > 1), else the build
falls back to a serial library.
"""

from __future__ import annotations

import ctypes
import fcntl
import functools
import hashlib
import logging
import os
import subprocess
import time
from pathlib import Path

import torch

from ..errors import ConfigError, MeltpotError
from .featureset import N2P2_CUTOFF, N2P2_TYPE, FeatureSet
from .symmetry import SymmetryFunctions

log = logging.getLogger(__name__)

SOURCE = Path(__file__).parent / "acsf_kernel.cpp"
LIB_NAME = "libmeltpot_acsf.so"
BASE_FLAGS = ("-O3", "-std=c++17", "-fPIC", "-shared")
#: function kinds of the table: the classic three 0, 1, 2; the others by their n2p2 type number
KINDS = {"radial": 0, "angular_narrow": 1, "angular_wide": 2,
         **{t: n for t, n in N2P2_TYPE.items() if n not in (2, 3, 9)}}
#: cutoff kinds of the table: n2p2's cutoff type numbers
CUTOFF_KINDS = dict(N2P2_CUTOFF)
#: columns of the function table (fn_par, fn_int)
N_PAR, N_INT = 8, 5
_ERRORS = {1: "pairs not sorted by centre or a centre index outside [0, n_local)",
           2: "a species index outside the feature set's elements", 3: "an invalid function table"}


class KernelBuildError(MeltpotError):
    """The compiled symmetry-function kernel cannot be built or loaded (no compiler, compile error)."""


# ---------------------------------------------------------------------------------- build
def compiler() -> str:
    """The C++ compiler (``$CXX``, else g++ or c++), as for the LAMMPS plugin."""
    from ..plugin.build import PluginBuildError
    from ..plugin.build import compiler as plugin_compiler

    try:
        return plugin_compiler()
    except PluginBuildError as exc:
        raise KernelBuildError(str(exc)) from None


def cache_root() -> Path:
    return Path(os.environ.get("MELTPOT_KERNEL_DIR") or Path.home() / ".cache" / "meltpot" / "kernel")


def build_key(cxx: str, flags: list[str]) -> str:
    """sha256 (16 hex digits) of the source, the flags and the compiler's version text."""
    try:
        version = subprocess.run([cxx, "--version"], capture_output=True, text=True, check=False).stdout
    except OSError as exc:
        raise KernelBuildError(f"the C++ compiler {cxx} does not run: {exc}") from exc
    h = hashlib.sha256(SOURCE.read_bytes())
    h.update(" ".join(flags).encode())
    h.update(version.encode())
    return h.hexdigest()[:16]


def build_kernel(out_dir: str | Path | None = None, force: bool = False) -> Path:
    """Path of the compiled kernel, compiling it if needed (~3 s): with OpenMP first, else serial.

    A variant that failed to compile leaves ``build.failed`` in its folder, so later calls go
    straight to the next variant."""
    cxx = compiler()
    root = Path(out_dir) if out_dir else cache_root()
    errors = []
    for extra in (["-fopenmp"], []):
        flags = [*BASE_FLAGS, *extra]
        folder = root / build_key(cxx, flags)
        so = folder / LIB_NAME
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if so.exists() and not force:
                return so
            if (folder / "build.failed").exists() and not force:
                errors.append((folder / "build.log").read_text() if (folder / "build.log").exists() else "")
                continue
            tmp = folder / (LIB_NAME + ".partial")
            cmd = [cxx, *flags, str(SOURCE), "-o", str(tmp)]
            t0 = time.time()
            try:
                res = subprocess.run(cmd, capture_output=True, text=True)
            except OSError as exc:
                raise KernelBuildError(f"the C++ compiler {cxx} does not run: {exc}") from exc
            (folder / "build.log").write_text(" ".join(cmd) + "\n\n" + res.stdout + res.stderr)
            if res.returncode != 0:
                (folder / "build.failed").touch()
                errors.append(res.stderr or res.stdout)
                continue
            tmp.replace(so)
            log.info("built the symmetry-function kernel %s in %.1f s", so, time.time() - t0)
            return so
    tail = "\n".join(errors[-1].strip().splitlines()[-15:]) if errors else ""
    raise KernelBuildError(f"compiling the symmetry-function kernel failed (logs under {root}):\n{tail}")


_I64, _I32, _U8, _F64, _F32 = (ctypes.POINTER(t) for t in (ctypes.c_int64, ctypes.c_int32, ctypes.c_uint8,
                                                          ctypes.c_double, ctypes.c_float))


@functools.lru_cache(maxsize=1)
def load_kernel() -> ctypes.CDLL:
    """The loaded kernel library (built on first use; KernelBuildError when that fails)."""
    so = build_kernel()
    try:
        lib = ctypes.CDLL(str(so))
    except OSError as exc:
        raise KernelBuildError(f"cannot load {so}: {exc}") from exc
    for name, real in (("meltpot_acsf_f64", _F64), ("meltpot_acsf_f32", _F32)):
        fn = getattr(lib, name)
        fn.restype = ctypes.c_int
        fn.argtypes = [ctypes.c_int64, ctypes.c_int64, _I64, _I32, _I32, real, ctypes.c_int32, ctypes.c_int32,
                       ctypes.c_int32, _F64, _I32, _U8, ctypes.c_int32, ctypes.c_double, _F64, real, real,
                       ctypes.c_int32]
    lib.meltpot_acsf_openmp.restype = ctypes.c_int
    return lib


def available() -> bool:
    """True if the kernel builds (or is cached) and loads here."""
    try:
        load_kernel()
    except MeltpotError as exc:
        log.debug("symmetry-function kernel unavailable: %s", exc)
        return False
    return True


# ---------------------------------------------------------------------------------- function table
def function_table(sf: SymmetryFunctions) -> dict:
    """The kernel's function table of a :class:`SymmetryFunctions` (``acsf_kernel.cpp``, the
    arguments of ``meltpot_acsf_f64``), also what the TorchScript export carries for the LAMMPS
    plugin: ``par`` (n_fn, 8) float64 eta, rs, rc, zeta, lambda, rl, angle_left, angle_right
    (radians); ``int`` (n_fn, 5) int32 kind (0 radial, 1 narrow, 2 wide, else the n2p2 type 12,
    13, 20–25), e1, e2, union column, compact core (1–4 poly1–4, 5 exp; +8 asymmetric); ``need``
    (n_elements, n_union) uint8; ``columns`` (n_elements, F_max) int64; ``cutoff_kind`` (n2p2's
    cutoff type), ``cutoff_alpha``; ``weights`` (n_elements,) float64, the atomic numbers the
    weighted types use; ``n_union``."""
    par, ints = [], []
    for k, u in enumerate(sf.rad_index.tolist()):
        par.append((float(sf.rad_eta[k]), float(sf.rad_rs[k]), float(sf.rad_rc[k]), 0.0, 0.0, 0.0, 0.0, 0.0))
        ints.append((KINDS["radial"], int(sf.rad_elem[k]), 0, int(u), 0))
    for g, terms in enumerate(sf.ang_terms):
        kind = KINDS["angular_narrow" if sf.ang_narrow[g] else "angular_wide"]
        for u, zeta, lam, e1, e2 in terms:
            par.append((float(sf.ang_eta[g]), float(sf.ang_rs[g]), float(sf.ang_rc[g]), float(zeta), float(lam),
                        0.0, 0.0, 0.0))
            ints.append((kind, int(e1), int(e2), int(u), 0))
    for q in range(sf.n_ext):
        par.append(tuple(float(v) for v in sf.ext_par[q]))
        ints.append((sf.ext_kind[q], max(sf.ext_e1[q], 0), max(sf.ext_e2[q], 0), sf.ext_col[q],
                     sf.ext_core[q] + (8 if sf.ext_asym[q] else 0)))
    cols = sf.columns.clone()
    need = torch.zeros(len(sf.elements), max(sf.n_union, 1), dtype=torch.uint8)
    rows = torch.arange(len(sf.elements))[:, None].expand_as(cols)
    need[rows[cols >= 0], cols[cols >= 0]] = 1
    return {"par": torch.tensor(par, dtype=torch.float64).reshape(-1, N_PAR).contiguous(),
            "int": torch.tensor(ints, dtype=torch.int32).reshape(-1, N_INT).contiguous(),
            "need": need.contiguous(), "columns": cols.to(torch.int64).contiguous(),
            "cutoff_kind": int(CUTOFF_KINDS[sf.cutoff_kind]), "cutoff_alpha": float(sf.cutoff_alpha),
            "weights": sf.z_weight.clone().contiguous(), "n_union": int(sf.n_union)}


# ---------------------------------------------------------------------------------- evaluation
def _ptr(t: torch.Tensor | None, ptype):
    return None if t is None else ctypes.cast(t.data_ptr(), ptype)


class KernelSymmetryFunctions:
    """G and dG of a feature set by the compiled kernel (see module docstring).

    Lengths in the unit of the feature set (Å or σ); dG in 1/length."""

    def __init__(self, featureset: FeatureSet):
        self._lib = load_kernel()
        self.featureset = featureset
        self.sf = SymmetryFunctions(featureset)          # union, columns, element order: the reference's
        sf = self.sf
        self.elements = sf.elements
        self.cutoff = sf.cutoff
        self.n_union = sf.n_union
        self.f_max = sf.f_max
        table = function_table(sf)
        self._fn_par, self._fn_int, self._need = table["par"], table["int"], table["need"]
        self._weights = table["weights"]
        cols = sf.columns
        # every element uses the whole union in union order: dU is dG as it is (no gather)
        self._identity = self.f_max == self.n_union and bool((cols == torch.arange(self.f_max)).all())
        self._cutoff_kind, self._cutoff_alpha = table["cutoff_kind"], table["cutoff_alpha"]

    def compute(self, species, center, neighbor, rij, n_local: int, derivatives: bool = True, threads: int = 1,
                dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(G, dG)`` from a pair list, as :meth:`SymmetryFunctions.forward` takes it.

        species: element index of every atom (length >= max(neighbor) + 1: ghost atoms allowed);
        center, neighbor: (P,) pairs with center < n_local, any order; rij: (P, 3) r_ij = x_j − x_i;
        torch tensors or numpy arrays (moved to CPU, no autograd).
        Returns G (n_local, F_max) and dG (P, F_max, 3) in the caller's pair order with
        dG[p, f, :] = ∂G[center[p], f] / ∂rij[p] (None when ``derivatives`` is False).
        ``dtype`` float32 runs the single-precision kernel (float64 is the tested default).
        """
        if self.sf.has_noise:
            raise ConfigError(f"feature set {self.featureset.name} holds noise pseudo-features (a selection "
                              "diagnostic that exists only in training data); it cannot be computed from positions")
        if dtype not in (torch.float64, torch.float32):
            raise ValueError(f"dtype must be torch.float64 or torch.float32, got {dtype}")
        species = torch.as_tensor(species).detach().cpu().long()
        center = torch.as_tensor(center).detach().cpu().long()
        neighbor = torch.as_tensor(neighbor).detach().cpu().long()
        rij = torch.as_tensor(rij).detach().cpu().to(dtype)
        n_local = int(n_local)
        P = center.numel()
        if rij.shape != (P, 3) or neighbor.shape != (P,):
            raise ValueError(f"center {tuple(center.shape)}, neighbor {tuple(neighbor.shape)} and rij "
                             f"{tuple(rij.shape)} must be (P,), (P,) and (P, 3)")
        if species.numel() < n_local:
            raise ValueError(f"species has {species.numel()} entries, fewer than n_local = {n_local}")
        order = None
        if P > 1 and bool((center[1:] < center[:-1]).any()):
            order = torch.argsort(center, stable=True)
            center, neighbor, rij = center[order], neighbor[order], rij[order]
        nb_species = species[neighbor].to(torch.int32).contiguous()
        center_species = species[:n_local].to(torch.int32).contiguous()
        center, rij = center.contiguous(), rij.contiguous()
        U = torch.empty(n_local, self.n_union, dtype=dtype)
        dU = torch.empty(P, self.n_union, 3, dtype=dtype) if derivatives else None
        real = _F64 if dtype == torch.float64 else _F32
        fn = self._lib.meltpot_acsf_f64 if dtype == torch.float64 else self._lib.meltpot_acsf_f32
        rc = fn(n_local, P, _ptr(center, _I64), _ptr(nb_species, _I32), _ptr(center_species, _I32), _ptr(rij, real),
                len(self.elements), self.n_union, self._fn_int.shape[0], _ptr(self._fn_par, _F64),
                _ptr(self._fn_int, _I32), _ptr(self._need, _U8), self._cutoff_kind, self._cutoff_alpha,
                _ptr(self._weights, _F64), _ptr(U, real), _ptr(dU, real),
                max(1, int(threads)))
        if rc != 0:
            raise ValueError(f"symmetry-function kernel: {_ERRORS.get(rc, f'error {rc}')}")
        G = self.sf._select(U, center_species.long())
        if dU is None:
            return G, None
        if self._identity:
            dG = dU
        else:   # the centre element's columns of each pair's row
            cols = self.sf.columns[center_species.long()[center]]               # (P, F_max)
            dG = torch.gather(dU, 1, cols.clamp(min=0)[..., None].expand(-1, -1, 3))
            dG = dG * (cols >= 0)[..., None].to(dtype)
        if order is not None:
            out = torch.empty_like(dG)
            out[order] = dG
            dG = out
        return G, dG

    def openmp(self) -> bool:
        """True if the loaded library was compiled with OpenMP (``threads`` > 1 then runs in parallel)."""
        return bool(self._lib.meltpot_acsf_openmp())


__all__ = ["KernelBuildError", "KernelSymmetryFunctions", "available", "build_kernel", "function_table",
           "load_kernel"]
