"""Import a trained n2p2 potential as a meltpot model.

:func:`read_n2p2` (``meltpot.export.n2p2``) parses the directory the way n2p2 reads it;
:func:`model_from_n2p2` turns that into an :class:`~meltpot.model.HDNNP` that computes the same
energies, so the potential runs in the meltpot pair style, the ASE calculator, as a sampling
engine, and can start training or an AGL λ path. What is folded where:

- **Function order**: n2p2's sorted order (its network input order) becomes the feature set's
  order, so no column is permuted; ``symfunction_short`` parameters are physical lengths.
- **Scaling**: every n2p2 scaling is affine in G, x = S_min + (S_max − S_min)(G − c)/w with
  (c, w) = (mean, σ) for ``scale_symmetry_functions_sigma``, (min, max − min) for
  ``scale_symmetry_functions``, (mean, max − min) with both scale and centre, and x = G − mean
  (centre) or x = G (none). The model keeps (G − μ)/σ with μ = c and σ = w/(S_max − S_min) (1
  without scaling); S_min goes into the first layer's bias. With n2p2's usual sigma scaling
  between 0 and 1 this is exactly the exporter's convention, so the round trip is exact.
- **Normalisation** (``mean_energy``, ``conv_energy``, ``conv_length``): the network output
  is divided by conv_energy (last layer) and mean_energy is added to each element's reference
  energy together with ``atom_energy``; conv_length changes no symmetry-function value.
- **Activations**: every n2p2 letter, per hidden layer (``l`` linear, ``t`` tanh, ``s``
  logistic, ``p`` softplus, ``r`` relu, ``g`` gaussian, ``c`` cos, ``S`` revlogistic, ``e``
  negexp, ``h`` harmonic; :data:`~meltpot.export.n2p2.ACTIVATION_OF_LETTER`): one meltpot name
  when all hidden layers agree, else one name per layer. The output layer is linear whatever its
  letter, because n2p2 evaluates it so (``Mode::setupNeuralNetwork``); the letter is kept in
  ``model.metadata["n2p2"]`` and written back by the exporter.
- **Topology**: ``global_nodes_short`` with ``element_nodes_short`` → per-element hidden sizes
  (``HDNNP.hidden`` a dict where the elements differ); the global line is kept in the metadata
  too, so the export writes the same keywords again.
- ``normalize_nodes`` (pre-activations divided by the previous layer's size n): W/n and b/n in
  every layer. An export of such a model writes these weights without the keyword: the same
  energies (to rounding), other files.

- **Symmetry functions**: n2p2 types 2, 3, 9, 12, 13 and 20–25 (all subtypes p1…p4, p1a…p4a,
  e), with every cutoff type 0–8 and its α (:mod:`meltpot.descriptors.featureset`).

Anything else — other symmetry-function types, RuNNer's per-element keywords — is refused
with the file, line and keyword (the reader's :class:`N2p2FormatError`, or
:class:`~meltpot.errors.MeltpotError` here).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import MeltpotError
from .n2p2 import ACTIVATION_OF_LETTER, N2p2Potential, featureset_from_n2p2, read_n2p2

__all__ = ["ACTIVATION_OF_LETTER", "import_n2p2", "model_from_n2p2"]


def _scaling(pot: N2p2Potential, el: str) -> tuple[np.ndarray, np.ndarray, float]:
    """(μ, σ, shift) of element ``el``: n2p2's scaled input = (G − μ)/σ + shift."""
    mn, mx, mean, sigma = pot.scaling[el].T
    span = pot.smax - pot.smin
    kind = pot.scaling_type
    if kind == "none":
        return np.zeros_like(mean), np.ones_like(mean), 0.0
    if kind == "center":
        return mean.copy(), np.ones_like(mean), 0.0
    width = sigma if kind == "sigma" else mx - mn
    centre = mn if kind == "scale" else mean
    if span == 0 or not np.all(np.isfinite(width)) or np.any(width == 0):
        bad = int(np.flatnonzero(~np.isfinite(width) | (width == 0))[0]) if span else 0
        raise MeltpotError(f"{pot.directory / 'scaling.data'}: element {el} function {bad + 1}: scaling "
                           f"{kind} divides by zero (width {width[bad]!r}, S_max − S_min {span!r})")
    return centre.copy(), width / span, float(pot.smin)


def model_from_n2p2(pot: N2p2Potential, units: str | None = None, name: str | None = None):
    """The :class:`~meltpot.model.HDNNP` that evaluates ``pot`` (see module docstring).
    ``units``: the unit system of the potential's energies and lengths (n2p2 has none; default
    the ``# meltpot_units`` comment of a meltpot export, else metal)."""
    from ..model.hdnnp import HDNNP

    where = pot.directory / "input.nn"
    if pot.cutoff is None:
        raise MeltpotError(f"{where}: cutoff_type {pot.cutoff_type}: not one of n2p2's cutoff types 0-8")
    for letter in pot.layer_letters:
        if letter not in ACTIVATION_OF_LETTER:
            raise MeltpotError(f"{where}: global_activation_short: letter {letter!r} has no meltpot activation "
                               f"(supported: {', '.join(ACTIVATION_OF_LETTER)})")
    fs = featureset_from_n2p2(pot.directory / "input.nn", name=name or f"n2p2-{pot.directory.name}")
    fs.meta = {"description": f"imported from the n2p2 potential {pot.directory}"}
    activation = [ACTIVATION_OF_LETTER[letter] for letter in pot.layer_letters]   # HDNNP makes one name of it
    hidden = {el: pot.element_hidden[el] for el in fs.elements}                    # … and one tuple of these
    model = HDNNP(fs, hidden=hidden, activation=activation).double()
    model.units = units or pot.units or "metal"
    # the file's layout where the model does not fix it, for an export of the same keywords
    model.metadata = {"n2p2": {"output_letter": pot.activations[-1], "global_nodes_short": list(pot.hidden)}}
    with torch.no_grad():
        for k, el in enumerate(model.elements):
            mu, sigma, shift = _scaling(pot, el)
            f = model.n_features[k]
            model.feature_mean[k, :f] = torch.from_numpy(mu)
            model.feature_std[k, :f] = torch.from_numpy(sigma)
            layers = pot.layers[el]
            for i, (layer, (W, b)) in enumerate(zip(model.nets[k].layers, layers)):
                W, b = W.copy(), b.copy()
                if i == 0 and shift:
                    b = b + shift * W.sum(axis=1)
                if pot.normalize_nodes:                 # n2p2: (W x + b)/n_in before the activation
                    W, b = W / W.shape[1], b / W.shape[1]
                if i == len(layers) - 1 and pot.conv_energy != 1.0:
                    W, b = W / pot.conv_energy, b / pot.conv_energy
                layer.weight.copy_(torch.from_numpy(W))
                layer.bias.copy_(torch.from_numpy(b))
            model.reference_energy[k] = pot.atom_energy[el] + pot.mean_energy
    return model


def import_n2p2(directory, out, units: str | None = None) -> dict:
    """Read the n2p2 potential in ``directory`` and save it as a meltpot model file ``out``, with
    its feature set beside it (``<out stem>.featureset.yaml``: ``meltpot descriptors compute
    --featureset`` builds a cache for training or a λ path from the model). Returns ``{"model",
    "potential", "out", "featureset"}``."""
    from ..model.modelfile import save_model

    pot = read_n2p2(directory)
    model = model_from_n2p2(pot, units=units)
    source = {"format": "n2p2", "directory": str(Path(directory).resolve()), "scaling": pot.scaling_type,
              "normalize_nodes": pot.normalize_nodes,
              "normalisation": {"mean_energy": pot.mean_energy, "conv_energy": pot.conv_energy,
                                "conv_length": pot.conv_length}}
    meta = {**model.metadata, "imported_from": source}
    save_model(model, out, units=model.units, metadata=meta)
    fs_path = Path(out).with_name(Path(out).stem + ".featureset.yaml")
    model.featureset.save(fs_path)
    return {"model": model, "potential": pot, "out": Path(out), "featureset": fs_path}
