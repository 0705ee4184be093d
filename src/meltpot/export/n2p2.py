"""n2p2 export of a trained HDNNP (LAMMPS ``pair_style hdnnp``), and a reader that checks it.

:func:`write_n2p2` writes an n2p2 potential directory: ``input.nn`` (elements, atomic energy
offsets, cutoff type, network topology, scaling keywords, one ``symfunction_short`` line per
function), ``scaling.data`` (per element and function: min, max, mean, sigma) and one
``weights.%03d.data`` per element, named by atomic number (Al → ``weights.013.data``; the LJ
placeholder Ar → ``weights.018.data``). :func:`read_n2p2` parses such a directory back into
plain data *the way n2p2 reads it* (its element order, its sorted function order, its scaling
type), and :func:`n2p2_atomic_energies` evaluates atomic energies with n2p2's scaling formula,
weight layout and activations. Together they check an export without n2p2: descriptors put into
n2p2's order (:func:`n2p2_columns`) must give the model's atomic energies.

n2p2 conventions (CompPhysVienna/n2p2, ``src/libnnp``; established from the source):

1. **Order.** Elements are sorted by atomic number (``ElementMap::registerElements``,
   ``ElementMap.cpp``): element indices, ``scaling.data`` blocks and ``e1``/``e2`` comparisons
   use that order, whatever the ``elements`` line says. Each element sorts its functions
   (``Element::sortSymmetryFunctions``, ``Element.cpp``, called from
   ``Mode::setupSymmetryFunctions``, ``Mode.cpp``) with ``operator<``: by type (2 < 3 < 9),
   then cutoff type, cutoff alpha, r_c, η, r_s, and for radial functions e1
   (``SymFncExpRad.cpp``), for angular ones ζ, λ, e1, e2 with e1 ≤ e2 swapped on reading
   (``SymFncExpAngn.cpp``, ``SymFncExpAngw.cpp``, ``SymFncBaseExpAng::setParameters``); types 12
   and 13 by r_c, η, r_s (13: then ζ, λ); the compact types by subtype (a string), then 20: e1,
   r_c, r_l; 21/22: e1, e2, r_c, r_l, left and right angle; 23: r_c, r_l; 24/25: r_c, r_l, the
   angles (``operator<`` of ``SymFncExpRadWeighted.cpp`` … ``SymFncCompAngwWeighted.cpp``). The
   sorted index is the network input index and the row order of ``scaling.data``; the order of
   lines in ``input.nn`` does not matter.
2. **Function lines** (``setParameters`` of ``SymFncExpRad.cpp`` / ``SymFncBaseExpAng.cpp`` /
   ``SymFncExpRadWeighted.cpp`` / ``SymFncExpAngnWeighted.cpp`` / ``SymFncCompRad.cpp`` /
   ``SymFncBaseCompAng.cpp`` / ``SymFncCompRadWeighted.cpp`` / ``SymFncBaseCompAngWeighted.cpp``)::

       symfunction_short <ec> 2 <e1> <eta> <rs> <rc>
       symfunction_short <ec> 3 <e1> <e2> <eta> <lambda> <zeta> <rc> [<rs>]
       symfunction_short <ec> 9 <e1> <e2> <eta> <lambda> <zeta> <rc> [<rs>]
       symfunction_short <ec> 12 <eta> <rs> <rc>
       symfunction_short <ec> 13 <eta> <rs> <lambda> <zeta> <rc>
       symfunction_short <ec> 20 <e1> <rl> <rc> <subtype>
       symfunction_short <ec> 21|22 <e1> <e2> <rl> <rc> <angle_left> <angle_right> <subtype>
       symfunction_short <ec> 23 <rl> <rc> <subtype>
       symfunction_short <ec> 24|25 <rl> <rc> <angle_left> <angle_right> <subtype>

   Type 3 is ``2^(1−ζ) Σ_{j<k} (1+λcosθ)^ζ exp(−η[(r_ij−r_s)²+(r_ik−r_s)²+(r_jk−r_s)²])
   f_c(r_ij) f_c(r_ik) f_c(r_jk)`` (the r_s shift applies to all three distances), type 9 the
   same without the r_jk factors — exactly :mod:`meltpot.descriptors.symmetry`; 12/13 weight the
   neighbours with their atomic numbers; 20–25 are the compact functions (angles in degrees,
   subtype p1…p4, p1a…p4a or e); formulas in :mod:`meltpot.descriptors.featureset`.
3. **Cutoff.** ``cutoff_type <n> <alpha>`` is read as an integer (``Mode::setupCutoff``) of
   ``CutoffFunction::CutoffType`` (``CutoffFunction.h``) 0–8 (hard, cos, tanhu, tanh, exp,
   poly1 … poly4; meltpot's names in :data:`~meltpot.descriptors.featureset.N2P2_CUTOFF`), with
   x = (r − αr_c)/(r_c − αr_c) and f_c = 1 below αr_c; 0 ≤ α < 1 (``setCutoffParameter``). We
   write ``cutoff_type <n> 0.0`` for α = 0 (cosine 1, polynomial 6 as before), else the α.
4. **Scaling** (``Mode::setupSymmetryFunctionScaling``, ``SymFnc::setScalingType`` and
   ``SymFnc::scale``, ``SymFnc.cpp``): ``scale_symmetry_functions_sigma`` alone selects
   ST_SCALESIGMA, G_s = S_min + (S_max − S_min)(G − mean)/sigma; with ``scale_min_short 0.0`` and
   ``scale_max_short 1.0`` that is our (G − μ)/σ. It must *not* be combined with
   ``center_symmetry_functions`` or ``scale_symmetry_functions``: those are tested first and
   would select ST_CENTER / ST_SCALE / ST_SCALECENTER. ``scaling.data`` lines are
   ``<element index 1-based> <function index 1-based> min max mean sigma``, consumed in element
   order, ``numSymmetryFunctions`` lines per element; lines starting with ``#`` are skipped and an
   empty line is an error there (``line.at(0)``), so none are written. min/max only set
   extrapolation warnings under ST_SCALESIGMA.
5. **Weights** (``NeuralNetwork::setConnections``, ``NeuralNetwork.cpp``; file read by
   ``Mode::readNeuralNetworkWeights`` + ``readColumnsFromFile``, first column only, ``#``
   comments): layer by layer, first all weights with the *target* neuron index running fastest
   (for each source neuron j: for each target neuron k: w_kj), then the biases of that layer.
   For an ``nn.Linear`` weight W (out, in) that is ``W.T.ravel()`` followed by ``b``.
6. **Activations** (``NeuralNetwork::ActivationFunction``, ``NeuralNetwork.h``; formulas in
   ``NeuralNetwork::propagateLayer``): ``global_activation_short`` letters l identity (meltpot
   ``linear``), t tanh, s logistic 1/(1+e⁻ˣ) (x > 35 → 1, x < −35 → 0), p softplus ln(1+eˣ)
   (x > 35 → x, x < −35 → 0), r relu max(0, x), g gaussian e^(−x²/2), c cos x, S revlogistic
   1 − 1/(1+e⁻ˣ), e negexp e⁻ˣ, h harmonic x². The documentation asks for one letter per
   layer, the output layer's last, but ``Mode::setupNeuralNetwork`` reads only the hidden
   layers' letters and gives the output layer AF_IDENTITY whatever the file says, so
   :func:`read_n2p2` keeps the output letter (``activations[-1]``, written back as read) and
   evaluates a linear output, as n2p2 and LAMMPS's ``pair_style hdnnp`` do; a meltpot model with a
   non-linear output layer is therefore refused by the writer. Our ``shifted_softplus``
   (softplus − ln 2) is exported as ``p`` with the −ln 2 folded into the next layer's bias
   (b' = b − ln2·Σ_j W_kj); n2p2 has no SiLU, so ``silu`` models are refused. (PyTorch's
   softplus returns x above 20, n2p2's above 35: the difference, < 2·10⁻⁹ per neuron, arises
   only for pre-activations beyond 20.) **Topology**: ``global_hidden_layers_short`` and
   ``global_nodes_short`` for every element, then ``element_nodes_short <el> <layer> <nodes>``
   (any number of lines; layer 1 … n_hidden, the last line for a layer wins) changes one hidden
   layer's size of one element; the depth and the activations are the same for all elements.
   The writer gives the elements' most common size per layer globally (ties: the lighter
   element's; an imported model's own global line where it still fits) and one
   ``element_nodes_short`` line per element and layer that differs. ``normalize_nodes``
   (``NeuralNetwork::propagateLayer``: every layer's pre-activation, the output's too, divided by
   the previous layer's size) is read and evaluated; the writer never writes it.
7. **Energies and units.** n2p2 is unit-agnostic (the writer gives no ``mean_energy``/``conv_*``
   keywords, so no normalisation; the reader applies them: output / conv_energy + mean_energy); ``atom_energy <El> <E>`` offsets are added to the total energy
   (``Mode::addEnergyOffset`` in ``InterfaceLammps::process``) but *not* to LAMMPS per-atom
   energies (``InterfaceLammps::getAtomicEnergy``). The model's units (metal: eV, Å; lj: ε, σ)
   are stated in an ``input.nn`` comment; in LAMMPS use ``cflength``/``cfenergy`` 1.0 in the
   same unit system, e.g. ``pair_style hdnnp 6.8 dir ./n2p2/ showew no showewsum 100 resetew no
   maxew 1000000 cflength 1.0 cfenergy 1.0`` and ``pair_coeff * * Al Ni``. The ``dir`` value
   needs its trailing ``/`` (``InterfaceLammps::initialize`` opens ``dir + "input.nn"``), and
   ``maxew`` is the number of extrapolation warnings tolerated (LAMMPS's ``pair_hdnnp.cpp`` stops
   when the count exceeds it; the default 0 stops at the first).

Numbers are written with 17 significant digits (``repr``/``%.16E``), so n2p2's ``atof`` reads
exactly our doubles: its sort sees our parameters and its scaling our μ and σ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..descriptors.featureset import N2P2_CUTOFF, N2P2_TYPE, is_noise
from ..errors import ConfigError, MeltpotError

#: meltpot activation → n2p2 letter (shifted_softplus: "p" plus a bias fold)
ACTIVATION_LETTER = {"linear": "l", "tanh": "t", "logistic": "s", "softplus": "p", "relu": "r", "gaussian": "g",
                     "cos": "c", "revlogistic": "S", "negexp": "e", "harmonic": "h", "shifted_softplus": "p"}
#: n2p2 letter → meltpot activation (``NeuralNetwork::ActivationFunction``: all of n2p2's)
ACTIVATION_OF_LETTER = {v: k for k, v in ACTIVATION_LETTER.items() if k != "shifted_softplus"}
#: n2p2 letters this module evaluates
_LETTERS = tuple(ACTIVATION_OF_LETTER)
#: n2p2's NeuralNetwork EXP_LIMIT (softplus and logistic saturate beyond it)
EXP_LIMIT = 35.0
TYPE_OF_N2P2 = {v: k for k, v in N2P2_TYPE.items()}
CUTOFF_OF_N2P2 = {v: k for k, v in N2P2_CUTOFF.items()}
#: elements n2p2 knows (``ElementMap::knownElements``: H … No, Z = 1 … 102)
MAX_Z = 102
_SCALING_KEYS = ("scale_symmetry_functions", "center_symmetry_functions", "scale_symmetry_functions_sigma")
#: keywords of other codes' settings (RuNNer) that n2p2 does not read (an unknown keyword there)
_FOREIGN_KEYS = ("element_hidden_layers_short", "element_activation_short")
#: n2p2's data-set normalisation (``nnp-norm``): all three or none
_NORM_KEYS = ("mean_energy", "conv_energy", "conv_length")
_UNIQUE_KEYS = ("number_of_elements", "elements", "cutoff_type", "global_hidden_layers_short",
                "global_nodes_short", "global_activation_short", "scale_min_short", "scale_max_short",
                "nnp_type", "normalize_nodes", *_SCALING_KEYS, *_NORM_KEYS)
UNIT_NOTE = {"metal": "metal (energies eV, lengths Angstrom)",
             "lj": "lj (energies epsilon, lengths sigma; element Ar is a placeholder)"}


class N2p2FormatError(MeltpotError):
    """A malformed n2p2 file: names the file, line and keyword at fault."""


# ----------------------------------------------------------------------------------------
# element and function order (facts 1 and 2)


def atomic_number(element: str) -> int:
    """Atomic number of ``element`` as n2p2 knows it (MeltpotError if n2p2 does not)."""
    from ase.data import atomic_numbers

    z = atomic_numbers.get(element)
    if z is None or not 1 <= z <= MAX_Z:
        raise MeltpotError(f"element {element!r} is not an element n2p2 knows (H … No)")
    return int(z)


def n2p2_elements(elements) -> list[str]:
    """Elements in n2p2's order (by atomic number)."""
    return sorted(elements, key=atomic_number)


def sort_key(fn: dict, element_index: dict) -> tuple:
    """n2p2's ``operator<`` as a tuple for one parsed-style function dict (same element and
    cutoff for all functions of an element, so the type and the parameters of fact 1 remain)."""
    e = sorted(element_index[x] for x in fn["neighbors"])
    t = fn["type"]
    if t == 2:
        return (2, fn["rc"], fn["eta"], fn["rs"], e[0])
    if t in (3, 9):
        return (t, fn["rc"], fn["eta"], fn["rs"], fn["zeta"], fn["lambda"], e[0], e[1])
    if t == 12:
        return (12, fn["rc"], fn["eta"], fn["rs"])
    if t == 13:
        return (13, fn["rc"], fn["eta"], fn["rs"], fn["zeta"], fn["lambda"])
    angles = (fn["angle_left"], fn["angle_right"]) if t in (21, 22, 24, 25) else ()
    return (t, fn["subtype"], *e, fn["rc"], fn["rl"], *angles)


def _as_n2p2_function(f) -> dict:
    """A meltpot :class:`SymmetryFunction` as the dict :func:`read_n2p2` yields."""
    def num(v):
        return None if v is None else float(v)

    return {"type": N2P2_TYPE[f.type], "neighbors": tuple(f.neighbors), "eta": float(f.eta), "rs": float(f.rs),
            "rc": float(f.rc), "zeta": num(f.zeta), "lambda": num(f.lam), "rl": num(f.rl),
            "angle_left": num(f.angle_left), "angle_right": num(f.angle_right), "subtype": f.subtype}


def n2p2_permutation(functions, elements) -> np.ndarray:
    """Indices into ``functions`` (a meltpot element's list) in n2p2's sorted order."""
    index = {el: k for k, el in enumerate(n2p2_elements(elements))}
    keys = [sort_key(_as_n2p2_function(f), index) for f in functions]
    return np.array(sorted(range(len(keys)), key=keys.__getitem__), dtype=np.int64)


def _num(x: float) -> str:
    """Shortest text that reads back as exactly this double (n2p2 uses atof)."""
    return repr(float(x))


def symfunction_line(element: str, f) -> str:
    """The ``symfunction_short`` line of a meltpot function of centre ``element`` (fact 2)."""
    t = N2P2_TYPE[f.type]
    head = f"symfunction_short {element} {t}"
    if t == 2:
        return f"{head} {f.neighbors[0]} {_num(f.eta)} {_num(f.rs)} {_num(f.rc)}"
    if t in (3, 9):
        e1, e2 = n2p2_elements(f.neighbors)
        return f"{head} {e1} {e2} {_num(f.eta)} {_num(f.lam)} {_num(f.zeta)} {_num(f.rc)} {_num(f.rs)}"
    if t == 12:
        return f"{head} {_num(f.eta)} {_num(f.rs)} {_num(f.rc)}"
    if t == 13:
        return f"{head} {_num(f.eta)} {_num(f.rs)} {_num(f.lam)} {_num(f.zeta)} {_num(f.rc)}"
    nbs = " ".join(n2p2_elements(f.neighbors))
    angles = f" {_num(f.angle_left)} {_num(f.angle_right)}" if f.is_angular else ""
    return f"{head}{' ' + nbs if nbs else ''} {_num(f.rl)} {_num(f.rc)}{angles} {f.subtype}"


def cutoff_line(fs) -> str:
    """``cutoff_type <n> <alpha>`` of a feature set (α = 0 written 0.0, as always)."""
    return f"cutoff_type {N2P2_CUTOFF[fs.cutoff]} {_num(fs.cutoff_alpha) if fs.cutoff_alpha else '0.0'}"


# ----------------------------------------------------------------------------------------
# writing


def check_exportable(model) -> None:
    """MeltpotError if n2p2 cannot represent ``model`` (activations, topology, noise inputs, elements)."""
    n2p2_activation_letters(model)
    check_featureset_exportable(model.featureset)


def n2p2_activation_letters(model) -> list[str]:
    """The ``global_activation_short`` letters of ``model`` (one per layer, the output's last;
    MeltpotError for what n2p2 cannot represent: an activation it lacks, elements whose networks
    differ in depth, a non-linear output layer). The output letter is ``l``, or for an imported
    model the letter its file had (n2p2 ignores it: fact 6)."""
    depth = sorted({len(model.element_hidden(el)) for el in model.elements})
    if len(depth) > 1:
        raise MeltpotError(f"the elements' networks have {depth} hidden layers: n2p2 gives all elements "
                           "global_hidden_layers_short hidden layers (element_nodes_short changes sizes only)")
    acts = model.layer_activations()
    bad = [a for a in acts if a not in ACTIVATION_LETTER]
    if bad:
        raise MeltpotError(f"activation {bad[0]!r} has no n2p2 equivalent (exportable meltpot activations: "
                           f"{', '.join(ACTIVATION_LETTER)})")
    if acts[-1] != "linear":
        raise MeltpotError(f"the output layer's activation {acts[-1]!r} has no n2p2 equivalent: n2p2 evaluates the "
                           "output layer linearly whatever global_activation_short says (Mode::setupNeuralNetwork)")
    letters = [ACTIVATION_LETTER[a] for a in acts]
    kept = _n2p2_hints(model).get("output_letter")
    if kept in _LETTERS:
        letters[-1] = kept
    return letters


def _n2p2_hints(model) -> dict:
    """What an imported model remembers of its n2p2 file's layout (``metadata["n2p2"]``)."""
    hints = (getattr(model, "metadata", None) or {}).get("n2p2")
    return hints if isinstance(hints, dict) else {}


def n2p2_topology(model) -> tuple[list[int], list[tuple[str, int, int]]]:
    """(``global_nodes_short`` sizes, [(element, layer, nodes)] for ``element_nodes_short``) of
    ``model``, elements and layers in n2p2's order (fact 6)."""
    els = n2p2_elements(model.elements)
    sizes = {el: list(model.element_hidden(el)) for el in els}
    n_hidden = len(sizes[els[0]])
    kept = _n2p2_hints(model).get("global_nodes_short")
    if isinstance(kept, list) and len(kept) == n_hidden and all(isinstance(h, int) for h in kept):
        glob = list(kept)
    else:
        glob = []
        for i in range(n_hidden):
            column = [sizes[el][i] for el in els]
            glob.append(max(column, key=lambda h: (column.count(h), -column.index(h))))
    extra = [(el, i + 1, sizes[el][i]) for el in els for i in range(n_hidden) if sizes[el][i] != glob[i]]
    return glob, extra


def check_featureset_exportable(fs) -> None:
    """MeltpotError if n2p2 cannot represent the feature set ``fs`` (elements, noise inputs, cutoff)."""
    for el in fs.elements:
        atomic_number(el)
        noise = [f.label() for f in fs.per_element[el] if is_noise(f)]
        if noise:
            raise MeltpotError(f"element {el} has noise pseudo-features ({', '.join(noise)}): a selection "
                               "diagnostic, not computable from positions; export the model without them")
    if fs.cutoff not in N2P2_CUTOFF:
        raise MeltpotError(f"cutoff {fs.cutoff!r} has no n2p2 cutoff_type")


def n2p2_layers(model, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(W (out, in), b) per layer of element ``k``'s network in n2p2's terms: input columns in
    n2p2's function order, the shifted softplus's −ln 2 folded into the following biases."""
    el = model.elements[k]
    perm = n2p2_permutation(model.featureset.per_element[el], model.elements)
    acts = model.nets[k].activations
    out = []
    for i, layer in enumerate(model.nets[k].layers):
        W = layer.weight.detach().cpu().double().numpy().copy()
        b = layer.bias.detach().cpu().double().numpy().copy()
        if i == 0:
            W = W[:, perm]
        elif acts[i - 1] == "shifted_softplus":
            b = b - math.log(2.0) * W.sum(axis=1)
        out.append((W, b))
    return out


def _input_nn(model, fs_lines: list[str], source: str | None) -> str:
    units = getattr(model, "units", "metal")
    els = n2p2_elements(model.elements)
    letters = n2p2_activation_letters(model)
    glob, per_element = n2p2_topology(model)
    act = model.activation if isinstance(model.activation, str) else " ".join(model.activation)
    refs = {el: float(model.reference_energy[k]) for k, el in enumerate(model.elements)}
    rc = max(f.rc for fns in model.featureset.per_element.values() for f in fns)
    head = [
        "# n2p2 potential written by meltpot (meltpot.export.n2p2)",
        *([f"# source model: {source}"] if source else []),
        f"# units: {UNIT_NOTE.get(units, units)}",
        f"# meltpot_units {units}",
        f"# meltpot activation: {act}"
        + (" (exported as softplus, -ln 2 folded into the next layer's biases)"
           if "shifted_softplus" in model.layer_activations() else ""),
        f"# feature set: {model.featureset.name} ({model.featureset.content_hash()[:12]})",
        "# LAMMPS (same unit system, no conversion):",
        f"#   pair_style hdnnp {_num(rc)} dir <this directory>/ showew no showewsum 100 resetew no "
        "maxew 1000000 cflength 1.0 cfenergy 1.0",
        "#   (dir needs the trailing /; maxew: extrapolation warnings tolerated before LAMMPS stops)",
        f"#   pair_coeff * * {' '.join(els)}    (one element per LAMMPS atom type)",
        "# atom_energy offsets enter the total energy, not LAMMPS per-atom energies.",
        "",
        f"number_of_elements {len(els)}",
        f"elements {' '.join(els)}",
        *[f"atom_energy {el} {_num(refs[el])}" for el in els],
        cutoff_line(model.featureset),
        "scale_symmetry_functions_sigma",
        "scale_min_short 0.0",
        "scale_max_short 1.0",
        f"global_hidden_layers_short {len(glob)}",
        f"global_nodes_short {' '.join(str(h) for h in glob)}",
        *[f"element_nodes_short {el} {layer} {nodes}" for el, layer, nodes in per_element],
        f"global_activation_short {' '.join(letters)}",
        "",
    ]
    return "\n".join(head + fs_lines) + "\n"


def write_n2p2(model, out_dir, feature_min: dict, feature_max: dict, source: str | None = None) -> dict:
    """Write ``model`` as an n2p2 potential directory ``out_dir`` (see module docstring).

    ``feature_min``/``feature_max``: per element arrays (the model's feature order) of the
    training split's extremes, n2p2's extrapolation bounds; μ and σ are the model's own
    scaling buffers, so n2p2 scales exactly as the model does. Returns the written paths
    (``input.nn``, ``scaling.data``, ``weights`` {element: path}).
    """
    check_exportable(model)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    els = n2p2_elements(model.elements)
    fs_lines, scal_lines, weights = [], [], {}
    scal_lines += ["# symmetry function scaling data written by meltpot (n2p2 format)",
                   "# element function min max mean sigma (element and function: n2p2's 1-based sorted indices)"]
    for e_idx, el in enumerate(els):
        k = model.elements.index(el)
        fns = model.featureset.per_element[el]
        nf = len(fns)
        lo = np.asarray(feature_min[el], dtype=np.float64).reshape(-1)
        hi = np.asarray(feature_max[el], dtype=np.float64).reshape(-1)
        if lo.size != nf or hi.size != nf:
            raise MeltpotError(f"feature min/max of {el} have {lo.size}/{hi.size} entries, the model {nf} features")
        perm = n2p2_permutation(fns, model.elements)
        mean = model.feature_mean[k, :nf].detach().cpu().double().numpy()
        std = model.feature_std[k, :nf].detach().cpu().double().numpy()
        fs_lines.append(f"# element {el}: {nf} functions in n2p2's sorted order")
        fs_lines += [symfunction_line(el, fns[i]) for i in perm]
        fs_lines.append("")
        scal_lines += [f"{e_idx + 1:4d} {n + 1:5d} {lo[i]:24.16E} {hi[i]:24.16E} {mean[i]:24.16E} {std[i]:24.16E}"
                       for n, i in enumerate(perm)]
        weights[el] = out / f"weights.{atomic_number(el):03d}.data"
        weights[el].write_text(_weights_text(el, n2p2_layers(model, k)))
    paths = {"input.nn": out / "input.nn", "scaling.data": out / "scaling.data", "weights": weights}
    paths["input.nn"].write_text(_input_nn(model, fs_lines, source))
    paths["scaling.data"].write_text("\n".join(scal_lines) + "\n")
    return paths


def _weights_text(element: str, layers) -> str:
    """weights.NNN.data: one connection per line, n2p2's order (fact 5); the first column is
    the value, the others (type a/b, running index, source layer/neuron, target layer/neuron)
    are for reading by eye."""
    lines = [f"# n2p2 weights for element {element} written by meltpot",
             "# value  t(a=weight,b=bias)  index  l_s n_s l_e n_e"]
    count = 0
    for i, (W, b) in enumerate(layers, start=1):
        n_out, n_in = W.shape
        for j in range(n_in):
            for kk in range(n_out):
                count += 1
                lines.append(f"{W[kk, j]:24.16E} a {count:9d} {i - 1:5d} {j + 1:5d} {i:5d} {kk + 1:5d}")
        for kk in range(n_out):
            count += 1
            lines.append(f"{b[kk]:24.16E} b {count:9d} {i:5d} {kk + 1:5d}")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------
# reading


@dataclass
class N2p2Potential:
    """An n2p2 potential directory as plain data, in n2p2's internal order.

    ``elements``: by atomic number; ``functions[el]``: dicts (type 2/3/9/12/13/20–25, neighbors,
    eta, rs, rc, zeta, lambda, rl, angle_left, angle_right, subtype — None or 0 where a type has
    no such parameter — and line) sorted as n2p2 sorts them; ``scaling[el]``: (F, 4) min, max, mean,
    sigma; ``layers[el]``: [(W (out, in), b)]; ``hidden``: ``global_nodes_short``,
    ``element_hidden[el]``: the element's sizes after ``element_nodes_short``; ``activations``:
    the ``global_activation_short`` letters as written, one per layer after the input (n2p2
    evaluates the last, the output layer's, as ``l`` whatever it is: :attr:`layer_letters`);
    ``scaling_type``: none/scale/center/scalecenter/sigma.
    """

    directory: Path
    elements: list[str]
    atom_energy: dict[str, float]
    cutoff_type: int
    cutoff_alpha: float
    scaling_type: str
    smin: float
    smax: float
    hidden: list[int]
    activations: list[str]
    functions: dict[str, list[dict]]
    scaling: dict[str, np.ndarray]
    layers: dict[str, list[tuple[np.ndarray, np.ndarray]]]
    units: str | None = None
    #: per-element hidden sizes (``element_nodes_short`` applied); default: ``hidden`` for all
    element_hidden: dict[str, list[int]] | None = None
    #: ``normalize_nodes``: each layer's pre-activation divided by the previous layer's size
    normalize_nodes: bool = False
    #: n2p2's normalisation (``mean_energy``, ``conv_energy``, ``conv_length``): the network's
    #: output is in normalised units, E_atom = output / conv_energy + mean_energy (physical).
    #: conv_length changes no symmetry-function value (n2p2 converts positions and parameters
    #: alike, ``SymFnc::changeLengthUnit``), so it enters nothing here.
    mean_energy: float = 0.0
    conv_energy: float = 1.0
    conv_length: float = 1.0

    def __post_init__(self):
        if self.element_hidden is None:
            self.element_hidden = {el: list(self.hidden) for el in self.elements}

    @property
    def layer_letters(self) -> list[str]:
        """The activation n2p2 applies per layer: the hidden layers' letters, then ``l`` (fact 6)."""
        return [*self.activations[:-1], "l"]

    @property
    def cutoff(self) -> str | None:
        """meltpot name of the cutoff type (:data:`~meltpot.descriptors.featureset.N2P2_CUTOFF`),
        None for a type meltpot does not know; its α is ``cutoff_alpha``."""
        return CUTOFF_OF_N2P2.get(self.cutoff_type)


def _fail(path, line: int | None, key: str, msg: str):
    where = f"{path}" + (f", line {line}" if line is not None else "")
    raise N2p2FormatError(f"{where}: {key}: {msg}")


def _float(path, line, key, text) -> float:
    try:
        v = float(text)
    except ValueError:
        _fail(path, line, key, f"{text!r} is not a number")
    if not math.isfinite(v):
        _fail(path, line, key, f"{text!r} is not finite")
    return v


def _int(path, line, key, text) -> int:
    try:
        return int(text)
    except ValueError:
        _fail(path, line, key, f"{text!r} is not an integer")


def _settings(path: Path) -> tuple[dict[str, list[tuple[int, list[str]]]], str | None]:
    """input.nn as {keyword: [(line number, args)]} (``#`` and ``!`` start comments, as in
    n2p2's ``Settings::parseLines``) and the ``meltpot_units`` comment if present."""
    if not path.exists():
        raise N2p2FormatError(f"{path} does not exist")
    keys: dict[str, list[tuple[int, list[str]]]] = {}
    units = None
    for n, raw in enumerate(path.read_text().splitlines(), start=1):
        if raw.startswith("# meltpot_units "):
            units = raw.split()[2]
        line = raw.split("#")[0].split("!")[0].strip()
        if line:
            word, *args = line.split()
            keys.setdefault(word, []).append((n, args))
    for k in _UNIQUE_KEYS:
        if len(keys.get(k, [])) > 1:
            _fail(path, keys[k][1][0], k, "given more than once (n2p2 treats this as critical)")
    return keys, units


def _one(path, keys, key, n_args: int | None = None) -> tuple[int, list[str]]:
    if key not in keys:
        _fail(path, None, key, "keyword missing")
    line, args = keys[key][0]
    if n_args is not None and len(args) < n_args:
        _fail(path, line, key, f"needs {n_args} value(s), got {len(args)}")
    return line, args


def _scaling_type(path, keys) -> tuple[str, float, float]:
    """n2p2's choice of scaling type from the keywords (fact 4) and S_min, S_max."""
    s, c, sig = (k in keys for k in _SCALING_KEYS)
    kind = "scale" if s and not c else "center" if c and not s else "scalecenter" if s and c else \
        "sigma" if sig else "none"
    bounds = []
    for key, default in (("scale_min_short", 0.0), ("scale_max_short", 1.0)):
        if key in keys:
            line, args = _one(path, keys, key, 1)
            bounds.append(_float(path, line, key, args[0]))
        else:
            bounds.append(default)
    return kind, bounds[0], bounds[1]


#: per n2p2 type: neighbour elements named, the numeric parameters in line order (an optional
#: last one in brackets), and whether a subtype string ends the line (fact 2)
_LINE_SYNTAX = {2: (1, ("eta", "rs", "rc"), False), 3: (2, ("eta", "lambda", "zeta", "rc", "[rs]"), False),
                9: (2, ("eta", "lambda", "zeta", "rc", "[rs]"), False), 12: (0, ("eta", "rs", "rc"), False),
                13: (0, ("eta", "rs", "lambda", "zeta", "rc"), False), 20: (1, ("rl", "rc"), True),
                21: (2, ("rl", "rc", "angle_left", "angle_right"), True),
                22: (2, ("rl", "rc", "angle_left", "angle_right"), True), 23: (0, ("rl", "rc"), True),
                24: (0, ("rl", "rc", "angle_left", "angle_right"), True),
                25: (0, ("rl", "rc", "angle_left", "angle_right"), True)}
_SUBTYPES = ("p1", "p2", "p3", "p4", "p1a", "p2a", "p3a", "p4a", "e")


def _parse_function(path, line: int, args: list[str], elements: list[str]) -> tuple[str, dict]:
    key = "symfunction_short"
    if len(args) < 2:
        _fail(path, line, key, "needs at least an element and a type")
    ec = args[0]
    if ec not in elements:
        _fail(path, line, key, f"centre element {ec!r} is not in the elements line {elements}")
    t = _int(path, line, key, args[1])
    if t not in TYPE_OF_N2P2:
        _fail(path, line, key, f"type {t} is not supported here (types {', '.join(map(str, sorted(TYPE_OF_N2P2)))})")
    n_nb, names, has_sub = _LINE_SYNTAX[t]
    optional = names[-1].startswith("[")
    most = 2 + n_nb + len(names) + has_sub
    least = most - optional
    if not least <= len(args) <= most:
        _fail(path, line, key, f"type {t} takes {least - 2}{' or ' + str(most - 2) if optional else ''} "
                               f"values after the type ({' '.join(['e'] * n_nb + list(names))}"
                               f"{' subtype' if has_sub else ''}), got {len(args) - 2}")
    nbs = tuple(args[2:2 + n_nb])
    for nb in nbs:
        if nb not in elements:
            _fail(path, line, key, f"neighbour element {nb!r} is not in the elements line {elements}")
    nums = args[2 + n_nb:len(args) - has_sub]
    fn = {"type": t, "neighbors": tuple(sorted(nbs, key=elements.index)), "eta": 0.0, "rs": 0.0, "zeta": None,
          "lambda": None, "rl": None, "angle_left": None, "angle_right": None, "subtype": None}
    for name, text in zip(names, nums):
        fn[name.strip("[]")] = _float(path, line, key, text)
    if has_sub:
        fn["subtype"] = args[-1]
        if args[-1] not in _SUBTYPES:
            _fail(path, line, key, f"subtype {args[-1]!r} of type {t} is not supported here "
                                   f"(supported: {', '.join(_SUBTYPES)})")
    fn["line"] = line
    return ec, fn


def _cutoff(path, line: int, args: list[str]) -> tuple[int, float]:
    """n2p2's cutoff type (0–8) and α (default 0) of a ``cutoff_type`` line (fact 3)."""
    kind = _int(path, line, "cutoff_type", args[0])
    alpha = _float(path, line, "cutoff_type", args[1]) if len(args) > 1 else 0.0
    if kind not in CUTOFF_OF_N2P2:
        _fail(path, line, "cutoff_type", f"{kind} is not an n2p2 cutoff type (0 … 8: "
                                         f"{', '.join(f'{v} {k}' for k, v in N2P2_CUTOFF.items())})")
    if not 0.0 <= alpha < 1.0:
        _fail(path, line, "cutoff_type", f"alpha {args[1]} outside [0, 1) (n2p2 requires 0 <= alpha < 1)")
    return kind, alpha


def _data_lines(path: Path) -> list[tuple[int, list[str]]]:
    if not path.exists():
        raise N2p2FormatError(f"{path} does not exist")
    return [(n, ln.split()) for n, ln in enumerate(path.read_text().splitlines(), start=1)
            if not ln.startswith("#")]


def _read_scaling(path: Path, elements, functions) -> dict[str, np.ndarray]:
    rows = _data_lines(path)
    out, pos = {}, 0
    for e_idx, el in enumerate(elements):
        block = []
        for i in range(len(functions[el])):
            if pos >= len(rows):
                _fail(path, None, "rows", f"ends after {pos} rows; element {el} needs {len(functions[el])} "
                                          f"(functions of {', '.join(elements)} in turn)")
            n, cols = rows[pos]
            pos += 1
            if not cols:
                _fail(path, n, "row", "empty line (n2p2 fails on it: lines are read with line.at(0))")
            if len(cols) < 6:
                _fail(path, n, "row", f"needs 6 columns (element function min max mean sigma), got {len(cols)}")
            if _int(path, n, "element", cols[0]) != e_idx + 1 or _int(path, n, "function", cols[1]) != i + 1:
                _fail(path, n, "row", f"expected element {e_idx + 1} ({el}) function {i + 1}, got {cols[0]} {cols[1]}")
            block.append([_float(path, n, name, c) for name, c in zip(("min", "max", "mean", "sigma"), cols[2:6])])
        out[el] = np.array(block, dtype=np.float64).reshape(-1, 4)
    if pos < len(rows):
        _fail(path, rows[pos][0], "rows", f"{len(rows) - pos} row(s) beyond the {pos} the functions need")
    return out


def _read_weights(path: Path, sizes: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Layers from a weights file (fact 5): first column of each non-comment line."""
    vals = []
    for n, cols in _data_lines(path):
        if cols:
            vals.append(_float(path, n, "connection", cols[0]))
    need = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    if len(vals) != need:
        _fail(path, None, "connections", f"{len(vals)} values, the architecture {'-'.join(map(str, sizes))} "
                                         f"needs {need}")
    v, pos, layers = np.array(vals), 0, []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        W = v[pos:pos + n_in * n_out].reshape(n_in, n_out).T.copy()
        pos += n_in * n_out
        layers.append((W, v[pos:pos + n_out].copy()))
        pos += n_out
    return layers


def _read_functions(path, keys, elements: list[str]) -> dict[str, list[dict]]:
    """The ``symfunction_short`` lines per centre element, in n2p2's sorted order (fact 1);
    an element without functions or a function given twice fails naming the line."""
    functions = {el: [] for el in elements}
    for line, args in keys.get("symfunction_short", []):
        ec, fn = _parse_function(path, line, args, elements)
        functions[ec].append(fn)
    index = {el: k for k, el in enumerate(elements)}
    for el in elements:
        if not functions[el]:
            _fail(path, None, "symfunction_short", f"no functions for element {el}")
        functions[el].sort(key=lambda fn: sort_key(fn, index))
        keys_ = [sort_key(fn, index) for fn in functions[el]]
        for a, b, fn in zip(keys_, keys_[1:], functions[el][1:]):
            if a == b:
                _fail(path, fn["line"], "symfunction_short", f"element {el}: this function is given twice")
    return functions


def featureset_from_n2p2(path, cutoff: str | None = None, name: str | None = None, cutoff_alpha: float = 0.0):
    """A meltpot :class:`FeatureSet` from the ``symfunction_short`` lines of an n2p2 settings file
    (``input.nn``, or a file of just those lines), in n2p2's order. Elements: the ``elements``
    line, else those the lines name; cutoff: ``cutoff_type`` (n2p2's type 0–8 and α), else
    ``cutoff`` and ``cutoff_alpha``. The parameters are physical lengths as written (n2p2 converts them together
    with the positions when it normalises with ``conv_length``, so no conversion applies)."""
    from ..descriptors.featureset import FeatureSet, SymmetryFunction

    alpha = cutoff_alpha
    path = Path(path)
    keys, _ = _settings(path)
    if "symfunction_short" not in keys:
        _fail(path, None, "symfunction_short", "no symmetry-function lines")
    if "elements" in keys:
        elements = n2p2_elements(keys["elements"][0][1])
    else:
        named = {a for _, args in keys["symfunction_short"] for a in args[:1]}
        named |= {a for _, args in keys["symfunction_short"] if len(args) > 2 for a in args[2:4]
                  if a[:1].isalpha() and a[:1].isupper()}
        elements = n2p2_elements(sorted(named))
    if "cutoff_type" in keys:
        line, args = _one(path, keys, "cutoff_type", 1)
        kind, alpha = _cutoff(path, line, args)
        cutoff = CUTOFF_OF_N2P2[kind]
    elif cutoff is None:
        _fail(path, None, "cutoff_type", "keyword missing (or give the cutoff: cosine or polynomial)")
    functions = _read_functions(path, keys, elements)

    def function(f):
        try:
            return SymmetryFunction(TYPE_OF_N2P2[f["type"]], eta=f["eta"], rc=f["rc"], rs=f["rs"], zeta=f["zeta"],
                                    lam=f["lambda"], neighbors=f["neighbors"], rl=f["rl"], angle_left=f["angle_left"],
                                    angle_right=f["angle_right"], subtype=f["subtype"])
        except ConfigError as exc:
            _fail(path, f["line"], "symfunction_short", str(exc))

    per_element = {el: [function(f) for f in functions[el]] for el in elements}
    return FeatureSet(per_element, cutoff=cutoff, name=name or path.stem, cutoff_alpha=alpha)


def n2p2_symfunction_lines(fs) -> list[str]:
    """The ``cutoff_type`` and ``symfunction_short`` lines of a feature set (n2p2's element and
    function order), ready for an ``input.nn``."""
    check_featureset_exportable(fs)
    lines = [cutoff_line(fs)]
    for el in n2p2_elements(fs.elements):
        fns = fs.per_element[el]
        lines += [symfunction_line(el, fns[i]) for i in n2p2_permutation(fns, fs.elements)]
    return lines


def read_n2p2(directory) -> N2p2Potential:
    """Parse an n2p2 potential directory the way n2p2 reads it (N2p2FormatError naming file,
    line and keyword for anything malformed or outside what :func:`n2p2_atomic_energies` does)."""
    d = Path(directory)
    path = d / "input.nn"
    keys, units = _settings(path)
    for k in _FOREIGN_KEYS:
        if k in keys:
            _fail(path, keys[k][0][0], k, "not an n2p2 keyword (RuNNer's; n2p2 ignores it with a warning, so the "
                                          "file does not mean what it says): remove it or give the topology "
                                          "with global_* and element_nodes_short")
    norm = {}
    present = [k for k in _NORM_KEYS if k in keys]
    if present and len(present) != len(_NORM_KEYS):
        _fail(path, keys[present[0]][0][0], present[0], f"normalisation needs all of {', '.join(_NORM_KEYS)}; "
                                                        f"missing {', '.join(k for k in _NORM_KEYS if k not in keys)}")
    for k in present:
        line, args = _one(path, keys, k, 1)
        norm[k] = _float(path, line, k, args[0])
        if k != "mean_energy" and norm[k] <= 0:
            _fail(path, line, k, f"{args[0]}: must be > 0")
    if "nnp_type" in keys and keys["nnp_type"][0][1] not in (["1"], []):
        _fail(path, keys["nnp_type"][0][0], "nnp_type", "only 1 (short range only) is supported")
    line, args = _one(path, keys, "elements", 1)
    for el in args:
        try:
            atomic_number(el)
        except MeltpotError as exc:
            _fail(path, line, "elements", str(exc))
    if len(set(args)) != len(args):
        _fail(path, line, "elements", f"lists an element twice: {args}")
    elements = n2p2_elements(args)
    line, args = _one(path, keys, "number_of_elements", 1)
    if _int(path, line, "number_of_elements", args[0]) != len(elements):
        _fail(path, line, "number_of_elements", f"{args[0]} but the elements line names {len(elements)}")
    atom_energy = {el: 0.0 for el in elements}
    for line, args in keys.get("atom_energy", []):
        if len(args) < 2 or args[0] not in elements:
            _fail(path, line, "atom_energy", f"needs an element of {elements} and an energy, got {args}")
        atom_energy[args[0]] = _float(path, line, "atom_energy", args[1])
    line, args = _one(path, keys, "cutoff_type", 1)
    cutoff_type, cutoff_alpha = _cutoff(path, line, args)
    scaling_type, smin, smax = _scaling_type(path, keys)
    line, args = _one(path, keys, "global_hidden_layers_short", 1)
    n_hidden = _int(path, line, "global_hidden_layers_short", args[0])
    line, args = _one(path, keys, "global_nodes_short", n_hidden)
    if len(args) != n_hidden:
        _fail(path, line, "global_nodes_short", f"{len(args)} values for {n_hidden} hidden layers "
                                                f"(global_hidden_layers_short)")
    hidden = [_int(path, line, "global_nodes_short", a) for a in args]
    line, args = _one(path, keys, "global_activation_short", n_hidden + 1)
    if len(args) != n_hidden + 1:
        _fail(path, line, "global_activation_short", f"{len(args)} letters: one per layer, the output layer "
                                                     f"included, makes {n_hidden + 1}")
    for a in args:
        if a not in _LETTERS:
            _fail(path, line, "global_activation_short", f"letter {a!r} is not an n2p2 activation "
                                                         f"(n2p2 has {' '.join(_LETTERS)})")
    activations = list(args)             # as written; n2p2 evaluates the output layer as l (fact 6)
    element_hidden = {el: list(hidden) for el in elements}
    for line, args in keys.get("element_nodes_short", []):
        key = "element_nodes_short"
        if len(args) < 3:
            _fail(path, line, key, f"needs an element, a hidden layer (1 … {n_hidden}) and a size, got {args}")
        if args[0] not in elements:
            _fail(path, line, key, f"element {args[0]!r} is not in the elements line {elements}")
        layer, nodes = _int(path, line, key, args[1]), _int(path, line, key, args[2])
        if not 1 <= layer <= n_hidden:
            _fail(path, line, key, f"layer {layer}: only hidden layers 1 … {n_hidden} can change size (0 is the "
                                   "input, the symmetry functions; the output has one neuron)")
        if nodes < 1:
            _fail(path, line, key, f"{nodes} nodes: a hidden layer needs at least one")
        element_hidden[args[0]][layer - 1] = nodes          # the last line for a layer wins, as in n2p2
    functions = _read_functions(path, keys, elements)
    scaling = _read_scaling(d / "scaling.data", elements, functions)
    if scaling_type in ("sigma",):
        for el in elements:
            if np.any(scaling[el][:, 3] == 0):
                _fail(d / "scaling.data", None, "sigma", f"element {el}: sigma 0 (division by zero in n2p2)")
    layers = {el: _read_weights(d / f"weights.{atomic_number(el):03d}.data",
                                [len(functions[el]), *element_hidden[el], 1]) for el in elements}
    return N2p2Potential(directory=d, elements=elements, atom_energy=atom_energy, cutoff_type=cutoff_type,
                         cutoff_alpha=cutoff_alpha, scaling_type=scaling_type, smin=smin, smax=smax, hidden=hidden,
                         activations=activations, functions=functions, scaling=scaling, layers=layers, units=units,
                         element_hidden=element_hidden, normalize_nodes="normalize_nodes" in keys,
                         **norm)


# ----------------------------------------------------------------------------------------
# evaluation as n2p2 does it


def n2p2_scale(pot: N2p2Potential, element: str, G: np.ndarray) -> np.ndarray:
    """n2p2's ``SymFnc::scale`` of raw G (n, F) in n2p2 order (``scalingFactor`` then the formula)."""
    mn, mx, mean, sigma = pot.scaling[element].T
    d = pot.smax - pot.smin
    if pot.scaling_type == "none":
        return G.copy()
    if pot.scaling_type == "center":
        return G - mean
    if pot.scaling_type == "scale":
        return pot.smin + (d / (mx - mn)) * (G - mn)
    if pot.scaling_type == "scalecenter":
        return pot.smin + (d / (mx - mn)) * (G - mean)
    return pot.smin + (d / sigma) * (G - mean)


def _activate(letter: str, x: np.ndarray) -> np.ndarray:
    """n2p2's ``propagateLayer`` activation of ``letter`` (fact 6; logistic and softplus with its
    EXP_LIMIT branches), written from its formulas."""
    x = np.asarray(x, dtype=np.float64)
    if letter == "l":
        return x
    if letter == "t":
        return np.tanh(x)
    if letter in ("s", "p"):
        inner = np.clip(x, -EXP_LIMIT, EXP_LIMIT)
        if letter == "s":
            return np.where(x > EXP_LIMIT, 1.0, np.where(x < -EXP_LIMIT, 0.0, 1.0 / (1.0 + np.exp(-inner))))
        return np.where(x > EXP_LIMIT, x, np.where(x < -EXP_LIMIT, 0.0, np.log(1.0 + np.exp(inner))))
    if letter == "r":
        return np.where(x > 0.0, x, 0.0)
    if letter == "g":
        return np.exp(-0.5 * x * x)
    if letter == "c":
        return np.cos(x)
    if letter == "S":
        with np.errstate(over="ignore"):              # e^{-x} → inf for x ≪ 0: value 1, as in n2p2
            return 1.0 - 1.0 / (1.0 + np.exp(-x))
    if letter == "e":
        return np.exp(-x)
    if letter == "h":
        return x * x
    raise MeltpotError(f"n2p2 activation letter {letter!r} unknown (n2p2 has {' '.join(_LETTERS)})")


def n2p2_atomic_energies(pot: N2p2Potential, element: str, G_n2p2_order, with_offset: bool = True) -> np.ndarray:
    """Atomic energies (n,) of atoms of ``element`` from raw features (n, F) in n2p2's function
    order, as n2p2 computes them: scaling, network, plus the ``atom_energy`` offset (which
    n2p2 adds to total energies; ``with_offset=False`` gives LAMMPS's per-atom energies)."""
    if element not in pot.layers:
        raise MeltpotError(f"{pot.directory}: no element {element!r}; elements: {', '.join(pot.elements)}")
    x = n2p2_scale(pot, element, np.asarray(G_n2p2_order, dtype=np.float64))
    for (W, b), letter in zip(pot.layers[element], pot.layer_letters):
        pre = x @ W.T + b
        x = _activate(letter, pre / W.shape[1] if pot.normalize_nodes else pre)
    e = x[:, 0] / pot.conv_energy + pot.mean_energy     # normalised → physical units
    return e + pot.atom_energy[element] if with_offset else e


def n2p2_columns(pot: N2p2Potential, element: str, functions) -> np.ndarray:
    """For each of n2p2's functions of ``element`` (its sorted order), the index of the meltpot
    function (``functions``: a feature-set element list) with the same type and parameters;
    ``G[:, n2p2_columns(...)]`` puts meltpot descriptors into n2p2's order."""
    mine = [_as_n2p2_function(f) if not is_noise(f) else None for f in functions]
    keys = ("type", "eta", "rs", "rc", "zeta", "lambda", "rl", "angle_left", "angle_right", "subtype")
    cols = []
    for fn in pot.functions[element]:
        hits = [i for i, m in enumerate(mine) if m is not None and all(m[k] == fn[k] for k in keys)
                and sorted(m["neighbors"]) == sorted(fn["neighbors"])]
        if len(hits) != 1:
            raise MeltpotError(f"{pot.directory}: {element} function of input.nn line {fn['line']} matches "
                               f"{len(hits)} meltpot functions (expected 1)")
        cols.append(hits[0])
    if len(cols) != len(functions):
        raise MeltpotError(f"{pot.directory}: {element} has {len(cols)} n2p2 functions, "
                           f"the feature set {len(functions)}")
    return np.array(cols, dtype=np.int64)


def check_export(model, pot: N2p2Potential, features: dict) -> dict[str, float]:
    """Largest |E_n2p2 − E_model| per element on ``features`` ({element: raw G (n, F) in the
    model's order}): n2p2's atomic energies from :func:`n2p2_atomic_energies` against the
    model's :meth:`~meltpot.model.HDNNP.element_energies`."""
    import torch

    out = {}
    for el, G in features.items():
        G = np.asarray(G, dtype=np.float64)
        if G.shape[0] == 0:
            continue
        k = model.elements.index(el)
        with torch.no_grad():
            ref = model.element_energies(k, torch.as_tensor(G, dtype=torch.float64)).numpy()
        cols = n2p2_columns(pot, el, model.featureset.per_element[el])
        out[el] = float(np.max(np.abs(n2p2_atomic_energies(pot, el, G[:, cols]) - ref)))
    return out


def export_n2p2(model_path, cache_path, out_dir, check_rows: int = 256) -> dict:
    """``meltpot export n2p2``: write the n2p2 directory of a model file with the training split's
    feature range from the descriptor cache (extrapolation bounds), read it back and compare
    n2p2's atomic energies with the model's on up to ``check_rows`` cached rows per element (from
    the first 32 frames). Returns ``model``, ``potential`` (read back), ``paths``, ``check``
    (largest deviation per element), ``over`` (the split of the statistics) and
    ``scaling_differs`` (elements whose cached feature means differ from the model's scaling)."""
    from ..descriptors.cache import DescriptorCache
    from ..model.modelfile import load_model
    from .ranges import model_columns

    model = load_model(model_path)
    check_exportable(model)
    with DescriptorCache(cache_path) as cache:
        cols = model_columns(cache.featureset(), model.featureset, cache_path)
        stats = {el: cache.stats(el) for el in model.elements}
        lo = {el: stats[el]["min"][c] for el, c in cols.items()}
        hi = {el: stats[el]["max"][c] for el, c in cols.items()}
        first = cache.frame_ids[:32]          # read a few frames, not the whole cache
        rows = {el: cache.features(el, first)[: max(check_rows, 0)][:, c] for el, c in cols.items()}
        over = stats[model.elements[0]]["over"]
    paths = write_n2p2(model, out_dir, lo, hi, source=str(model_path))
    pot = read_n2p2(out_dir)
    diff = check_export(model, pot, rows)
    differs = []
    for k, el in enumerate(model.elements):
        f = model.n_features[k]
        mu = model.feature_mean[k, :f].numpy()
        if not np.allclose(mu, stats[el]["mean"][cols[el]], rtol=1e-6, atol=1e-12):
            differs.append(el)
    return {"model": model, "potential": pot, "paths": paths, "check": diff, "over": over,
            "scaling_differs": differs}
