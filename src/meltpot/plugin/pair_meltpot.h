/* pair_style meltpot: a LAMMPS plugin that runs a meltpot HDNNP: the symmetry functions and
   their derivatives by the compiled kernel (meltpot/descriptors/acsf_kernel.cpp, built into the
   plugin), the networks from a TorchScript export (format version 3), one model or a committee of K.

   Built by `meltpot plugin build` against the installed LAMMPS headers and libtorch;
   loaded with `plugin load meltpot.so`. See pair_meltpot.cpp for the syntax. */

#ifndef MELTPOT_PAIR_MELTPOT_H
#define MELTPOT_PAIR_MELTPOT_H

#include "pair.h"

#include <torch/cuda.h>
#include <torch/script.h>

#include <cstdint>
#include <string>
#include <vector>

namespace LAMMPS_NS {

class PairMeltpot : public Pair {
 public:
  PairMeltpot(class LAMMPS *);
  ~PairMeltpot() override;
  void compute(int, int) override;
  void settings(int, char **) override;
  void coeff(int, char **) override;
  void init_style() override;
  double init_one(int, int) override;
  void *extract(const char *, int &) override;
  int pack_reverse_comm(int, int, double *) override;
  void unpack_reverse_comm(int, int *, double *) override;

 private:
  torch::jit::Module model;
  torch::Device device;
  std::string model_file;
  std::string model_units;
  double cutoff;
  std::vector<std::string> model_elements;
  std::vector<int> type_element;    // LAMMPS type (1..ntypes) -> model element index

  // the kernel's function table (from the export; layout of meltpot_acsf_f64)
  int n_fn, n_union, f_max, cutoff_kind;   // cutoff_kind: n2p2's cutoff type
  double cutoff_alpha;              // its inner cutoff alpha rc
  std::vector<double> fn_par;       // n_fn x 8: eta, rs, rc, zeta, lambda, rl, angle_left, angle_right
  std::vector<int32_t> fn_int;      // n_fn x 5: kind, e1, e2, column in the union, compact core
  std::vector<double> fn_weights;   // n_elements: atomic numbers (weighted types)
  std::vector<uint8_t> fn_need;     // n_elements x n_union: columns each centre element needs
  std::vector<int64_t> columns;     // n_elements x f_max: union column of each feature (-1: none)
  std::vector<double> feat_min, feat_max;   // n_elements x f_max: training range (widened)

  bool single;                      // precision single: the kernel in float (networks in double)
  bigint batch_atoms;               // local atoms per kernel + network batch (0: from a memory budget)

  // per-step work buffers (kept between steps); pairs p sorted by centre ii (index in ilist)
  std::vector<int64_t> w_start;     // ii -> first pair (inum + 1 entries)
  std::vector<int64_t> w_centre;    // pair -> centre, relative to the batch's first centre
  std::vector<int32_t> w_nbspecies; // pair -> element of the neighbour
  std::vector<int> w_j;             // pair -> LAMMPS index of the neighbour
  std::vector<double> w_rij;        // pair -> r_ij = x_j - x_i
  std::vector<int32_t> w_cspecies;  // ii -> element
  std::vector<int64_t> w_cspecies64;
  std::vector<double> w_U, w_dU, w_G, w_dEdU;
  std::vector<float> w_rijf, w_Uf, w_dUf;   // precision single

  // extrapolation bookkeeping (atoms with any feature outside the training range)
  bool has_range;
  bigint extrap_limit;              // stop when more atoms than this extrapolate in one step (< 0: never)
  int extrap_warnings_max;          // warnings written to the log (then one notice)
  int extrap_warnings_written;
  bigint extrap_last_report;        // step of the last extrapolation line
  double extrap_step;               // atoms extrapolating in the last evaluation (all ranks)
  double extrap_total;              // sum over evaluations so far (all ranks)

  // committee (an export with committee_size K >= 2: K networks on one feature set)
  int n_models;                     // K (1: a single-model export)
  bigint devi_every;                // write the deviation every N steps (0: never)
  std::string devi_file;
  FILE *devi_fp;                    // rank 0's open deviation file
  bool devi_now;                    // this evaluation computes per-model forces
  std::vector<double> w_dEdUk;      // deviation steps: nb x K x n_union, each model's dE/dU
  std::vector<double> w_ek;         // K: each model's energy of this rank's local atoms (eV)
  std::vector<double> w_fk;         // deviation steps: (nlocal + nghost) x K x 3, each model's forces (eV/A)
  double devi[4];                   // last deviation: max, min, mean sigma_F (eV/A), sigma_E (eV/atom)

  void allocate();
  void deviation();
  void load_model();
  void evaluate(bool pair_virial, double &energy, double &n_extrapolating);
  void batch(int ii0, int ii1, bool pair_virial, double &energy, double &n_extrapolating);
  template <class Real> void scatter(const Real *dU, int ii0, int64_t p0, int64_t np, bool pair_virial);
};

}    // namespace LAMMPS_NS

#endif
