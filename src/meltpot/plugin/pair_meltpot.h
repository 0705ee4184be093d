/* pair_style meltpot: a LAMMPS plugin that runs a TorchScript export of a meltpot HDNNP.

   Built by `meltpot lammps build-plugin` against the installed LAMMPS headers and libtorch;
   loaded with `plugin load meltpot.so`. See pair_meltpot.cpp for the syntax. */

#ifndef MELTPOT_PAIR_MELTPOT_H
#define MELTPOT_PAIR_MELTPOT_H

#include "pair.h"

#include <torch/cuda.h>
#include <torch/script.h>

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

 private:
  torch::jit::Module model;
  torch::Device device;
  std::string model_file;
  double cutoff;
  std::vector<std::string> model_elements;
  std::vector<int> type_element;    // LAMMPS type (1..ntypes) -> model element index
  // extrapolation bookkeeping (atoms with any feature outside the training range)
  bool has_range;
  bigint extrap_limit;              // stop when more atoms than this extrapolate in one step (< 0: never)
  int extrap_warnings_max;          // warnings written to the log (then one notice)
  int extrap_warnings_written;
  bigint extrap_last_report;       // step of the last extrapolation line
  double extrap_step;               // atoms extrapolating in the last evaluation (all ranks)
  double extrap_total;              // sum over evaluations so far (all ranks)

  void allocate();
};

}    // namespace LAMMPS_NS

#endif
