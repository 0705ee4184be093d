#!/usr/bin/env bash
# Stability of a trained potential in long NVT liquid runs (issue 15, item 5): for each
# temperature, the reference potential melts and equilibrates a 108-atom liquid, then the
# exported model runs 20 ps (10 000 steps of 2 fs) from the reference's last frame, and
# `meltpot md compare` checks collapse (closest approach), temperature, extrapolation, g(r), D.
#   scripts/stability_runs.sh RUN_DIR [T ...]      e.g. scripts/stability_runs.sh results/al-no-hot 1000 1250
# Needs RUN_DIR/config.yaml, RUN_DIR/lammps/potential.pt and RUN_DIR/lammps/plugin.txt (the
# workflow's export_potential and plugin rules). Results in RUN_DIR/md/stability/T<T>/.
set -euo pipefail
run=${1:?run folder}; shift
temps=("$@")
[ $# -eq 0 ] && temps=(1000 1250)
export OMP_NUM_THREADS=1
common="n_atoms=108 phase=liquid dump_every=100 production_steps=10000"
for T in "${temps[@]}"; do
  out="$run/md/stability/T$T"
  mkdir -p "$out"
  meltpot md run nvt "$run/config.yaml" --set T="$T" $common equilibration_steps=1000 melt_steps=2000 \
      cool_steps=1000 --out-dir "$out/reference" > "$out.reference.log" 2>&1
  meltpot md run nvt "$run/config.yaml" --set T="$T" $common equilibration_steps=500 melt_steps=0 cool_steps=0 \
      structure_file="$(realpath "$out/reference/dump.lammpstrj")" --plugin "$(cat "$run/lammps/plugin.txt")" \
      --model "$run/lammps/potential.pt" --out-dir "$out/model" > "$out.model.log" 2>&1
  meltpot md compare reference="$out/reference" model="$out/model" --config "$run/config.yaml" \
      --out-dir "$out/comparison" > "$out.compare.log" 2>&1
  echo "T=$T: $(grep -h -E 'stable|collapse' "$out.compare.log" | head -3)"
  cat "$out/comparison/comparison.csv"
done
