// Atom-centred symmetry functions and their analytic derivatives from a pair list.
//
// Plain C++17 (no torch, no Python headers), called through ctypes by meltpot/descriptors/kernel.py.
// The formulas are exactly those of the torch reference (meltpot/descriptors/symmetry.py):
//
//   radial  G = sum_j exp(-eta (r_ij - rs)^2) fc(r_ij)
//   narrow  G = 2^(1-zeta) sum_{j<k} (1 + lam cos)^zeta exp(-eta[(r_ij-rs)^2 + (r_ik-rs)^2 + (r_jk-rs)^2])
//                                   fc(r_ij) fc(r_ik) fc(r_jk)
//   wide    as narrow without the r_jk factors
//
// with fc = 0 at r >= rc (each function its own rc), cosine or polynomial cutoff, and element
// blocks: a radial function sums neighbours of one element, an angular one the pairs {j, k} whose
// species are {e1, e2} in either order. Non-integer zeta uses max(0, 1 + lam cos)^zeta.
//
// Inputs are pairs p = (i, j) sorted by centre i, with r_ij = x_j - x_i. Outputs: U (n_local x
// n_union), the values of every function of the union, and optionally dU (n_pairs x n_union x 3)
// with dU[p, u, :] = dU[center[p], u] / d r_ij[p]: a pair moves only its own centre's functions;
// a triplet (i; j, k) contributes to the rows of both of its pairs.
//
// Shared work: per pair one exp and one cutoff (value and derivative) per distinct (eta, rs, rc);
// per triplet cos, r_jk and the powers (1 + lam cos)^zeta of all zetas from one chain of squarings.
// Only the functions a centre element needs are computed (``need``): a subset skips the dropped
// terms, whole angular groups, and the triplet loop when no angular function is left. Neighbours
// beyond the largest angular rc take no part in triplets; when every angular group is narrow,
// triplets with r_jk >= rc are skipped before any other work.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

enum Kind : int32_t { RADIAL = 0, NARROW = 1, WIDE = 2 };
enum Cutoff : int32_t { COSINE = 0, POLYNOMIAL = 1 };
constexpr double PI = 3.14159265358979323846;

// A radial factor exp(-eta (r - rs)^2) fc(r): the radial functions and the per-pair part of the
// angular ones. One per distinct (eta, rs, rc) that a centre element needs.
template <class T>
struct Term {
    T eta, rs, rc;
};

template <class T>
struct RadFn {
    int term, col;
};

template <class T>
struct AngFn {
    int col, power, key;   // power: index into the plan's powers; key: e1 * n_elements + e2, e1 <= e2
    T coef, coef_lam;      // 2^(1 - zeta), 2^(1 - zeta) lambda
};

template <class T>
struct AngGroup {          // angular functions sharing (type, eta, rs, rc)
    int term;
    bool narrow;
    T eta, rs, rc;
    std::vector<AngFn<T>> fns;
};

template <class T>
struct Power {             // (1 + lam cos)^zeta; izeta >= 1: integer zeta (chain), 0: non-integer
    int lam_index;         // 0: lam = -1, 1: lam = +1
    int izeta;
    T zeta;
};

// What one centre element computes.
template <class T>
struct Plan {
    std::vector<Term<T>> terms;
    std::vector<std::vector<RadFn<T>>> rad_by_elem;   // radial functions per neighbour element
    std::vector<AngGroup<T>> groups;
    std::vector<Power<T>> powers;
    bool lam_used[2] = {false, false};
    int chain_bits = 0;        // squarings x^(2^k), k < chain_bits, cover every integer zeta - 1
    T ang_rc = 0;              // largest rc of the angular groups
    bool any_narrow = false, all_narrow = false;
};

template <class T>
inline void cutoff(T r, T rc, int kind, T& f, T& df) {
    if (r >= rc) {
        f = 0;
        df = 0;
        return;
    }
    if (kind == COSINE) {
        const T a = T(PI) / rc;
        f = T(0.5) * (std::cos(a * r) + T(1));
        df = T(-0.5) * a * std::sin(a * r);
    } else {
        const T x = r / rc;
        f = ((T(15) - T(6) * x) * x - T(10)) * x * x * x + T(1);
        const T y = x * (T(1) - x);
        df = T(-30) * y * y / rc;
    }
}

// w = exp(-eta (r - rs)^2) fc(r) and dw/dr
template <class T>
inline void radial_factor(T r, const Term<T>& t, int kind, T& w, T& dw) {
    T f, df;
    cutoff(r, t.rc, kind, f, df);
    if (f == T(0) && df == T(0)) {
        w = 0;
        dw = 0;
        return;
    }
    const T d = r - t.rs;
    const T e = std::exp(-t.eta * d * d);
    w = e * f;
    dw = e * (df - T(2) * t.eta * d * f);
}

template <class T>
int find_term(std::vector<Term<T>>& terms, T eta, T rs, T rc) {
    for (size_t k = 0; k < terms.size(); ++k)
        if (terms[k].eta == eta && terms[k].rs == rs && terms[k].rc == rc) return int(k);
    terms.push_back({eta, rs, rc});
    return int(terms.size()) - 1;
}

// Plan of element e from the function table (fn_par: eta, rs, rc, zeta, lambda; fn_int: kind,
// e1, e2, column). Returns false on an invalid table.
template <class T>
bool make_plan(int e, int n_elements, int n_union, int n_fn, const double* fn_par, const int32_t* fn_int,
               const uint8_t* need, Plan<T>& plan) {
    plan.rad_by_elem.assign(n_elements, {});
    std::vector<double> group_key;   // (kind, eta, rs, rc) of each group
    for (int f = 0; f < n_fn; ++f) {
        const double* p = fn_par + 5 * f;
        const int32_t* q = fn_int + 4 * f;
        const int kind = q[0], e1 = q[1], e2 = q[2], col = q[3];
        if (col < 0 || col >= n_union || e1 < 0 || e1 >= n_elements) return false;
        if (need && !need[size_t(e) * n_union + col]) continue;
        const T eta = T(p[0]), rs = T(p[1]), rc = T(p[2]);
        if (!(rc > T(0))) return false;
        if (kind == RADIAL) {
            plan.rad_by_elem[e1].push_back({find_term(plan.terms, eta, rs, rc), col});
            continue;
        }
        if ((kind != NARROW && kind != WIDE) || e2 < 0 || e2 >= n_elements) return false;
        const double zeta = p[3], lam = p[4];
        if (!(zeta >= 1.0) || (lam != 1.0 && lam != -1.0)) return false;
        size_t g = 0;
        for (; g < plan.groups.size(); ++g)
            if (group_key[4 * g] == kind && group_key[4 * g + 1] == p[0] && group_key[4 * g + 2] == p[1] &&
                group_key[4 * g + 3] == p[2])
                break;
        if (g == plan.groups.size()) {
            group_key.insert(group_key.end(), {double(kind), p[0], p[1], p[2]});
            plan.groups.push_back({find_term(plan.terms, eta, rs, rc), kind == NARROW, eta, rs, rc, {}});
        }
        const int li = lam > 0 ? 1 : 0;
        plan.lam_used[li] = true;
        const int izeta = zeta == std::floor(zeta) && zeta < 1 << 30 ? int(zeta) : 0;
        int pw = 0;
        for (; pw < int(plan.powers.size()); ++pw)
            if (plan.powers[pw].lam_index == li && plan.powers[pw].zeta == T(zeta)) break;
        if (pw == int(plan.powers.size())) plan.powers.push_back({li, izeta, T(zeta)});
        int bits = 0;   // x^(zeta - 1) uses x^(2^k) for k < bits
        for (int m = izeta - 1; m > 0; m >>= 1) ++bits;
        plan.chain_bits = std::max(plan.chain_bits, bits);
        const int lo = std::min(e1, e2), hi = std::max(e1, e2);
        plan.groups[g].fns.push_back({col, pw, lo * n_elements + hi, T(std::exp2(1.0 - zeta)), T(std::exp2(1.0 - zeta) * lam)});
    }
    plan.all_narrow = !plan.groups.empty();
    for (const auto& g : plan.groups) {
        plan.ang_rc = std::max(plan.ang_rc, g.rc);
        plan.any_narrow = plan.any_narrow || g.narrow;
        plan.all_narrow = plan.all_narrow && g.narrow;
    }
    return true;
}

// Scratch of one thread: per neighbour of the current centre.
template <class T>
struct Scratch {
    std::vector<T> r, inv_r, unit, w, dw;   // unit: 3 per pair; w, dw: n_terms per pair
    std::vector<int> ang, kept;             // neighbours with r < ang_rc; partners k of one j
    std::vector<T> pv, pd, sq;              // power values, derivatives (d/dx), squarings
    std::vector<T> acc;                     // n_union x 3: derivatives of one pair j, summed over k
};

template <class T, bool DERIV>
void one_centre(int64_t i, int64_t p0, int64_t p1, const Plan<T>& plan, int n_union, int n_elements,
                int cutoff_kind, const int32_t* nb_species, const T* rij, T* U, T* dU, Scratch<T>& s) {
    T* u = U + size_t(i) * n_union;
    std::fill(u, u + n_union, T(0));
    const int64_t n = p1 - p0;
    if (DERIV) std::fill(dU + size_t(p0) * n_union * 3, dU + size_t(p1) * n_union * 3, T(0));
    if (n == 0) return;
    const int nt = int(plan.terms.size());
    s.r.resize(n);
    s.inv_r.resize(n);
    s.unit.resize(3 * n);
    s.w.resize(size_t(n) * nt);
    s.dw.resize(size_t(n) * nt);
    s.ang.clear();
    for (int64_t a = 0; a < n; ++a) {
        const T* v = rij + 3 * (p0 + a);
        const T r = std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
        s.r[a] = r;
        s.inv_r[a] = T(1) / r;
        for (int c = 0; c < 3; ++c) s.unit[3 * a + c] = v[c] * s.inv_r[a];
        for (int t = 0; t < nt; ++t) radial_factor(r, plan.terms[t], cutoff_kind, s.w[a * nt + t], s.dw[a * nt + t]);
        if (r < plan.ang_rc) s.ang.push_back(int(a));
    }
    // radial functions
    for (int64_t a = 0; a < n; ++a) {
        for (const auto& f : plan.rad_by_elem[nb_species[p0 + a]]) {
            u[f.col] += s.w[a * nt + f.term];
            if (DERIV) {
                T* d = dU + (size_t(p0 + a) * n_union + f.col) * 3;
                const T g = s.dw[a * nt + f.term];
                for (int c = 0; c < 3; ++c) d[c] = g * s.unit[3 * a + c];
            }
        }
    }
    if (plan.groups.empty()) return;
    // angular functions over neighbour pairs j < k
    const int np = int(plan.powers.size());
    s.pv.resize(np);
    s.pd.resize(np);
    s.sq.resize(std::max(plan.chain_bits, 1));
    const int na = int(s.ang.size());
    const T ang_rc2 = plan.ang_rc * plan.ang_rc;
    s.acc.resize(3 * size_t(n_union));
    s.kept.resize(na);
    for (int ia = 0; ia < na; ++ia) {
        const int a = s.ang[ia];
        const T* ua = &s.unit[3 * a];
        const T ra = s.r[a], inv_ra = s.inv_r[a];
        const T* va = rij + 3 * (p0 + a);
        const int sa = nb_species[p0 + a];
        T* acc = s.acc.data();   // d/dr_ij of this pair, summed over all k, added to dU once below
        if (DERIV) std::fill(acc, acc + 3 * n_union, T(0));
        // partners k > j; when every group is narrow only those with r_jk < rc (a branch-free
        // pass first: about half the candidates drop out in a liquid)
        int nk = 0;
        if (plan.all_narrow) {
            for (int ib = ia + 1; ib < na; ++ib) {
                const T* vb = rij + 3 * (p0 + s.ang[ib]);
                const T dx = vb[0] - va[0], dy = vb[1] - va[1], dz = vb[2] - va[2];
                s.kept[nk] = ib;
                nk += dx * dx + dy * dy + dz * dz < ang_rc2;
            }
        } else {
            for (int ib = ia + 1; ib < na; ++ib) s.kept[nk++] = ib;
        }
        for (int kk = 0; kk < nk; ++kk) {
            const int b = s.ang[s.kept[kk]];
            const T rb = s.r[b], inv_rb = s.inv_r[b];
            const T* vb = rij + 3 * (p0 + b);
            T cvec[3] = {vb[0] - va[0], vb[1] - va[1], vb[2] - va[2]};   // r_jk = r_ik - r_ij
            T rjk = 0, inv_rjk = 0;
            if (plan.any_narrow) {
                rjk = std::sqrt(cvec[0] * cvec[0] + cvec[1] * cvec[1] + cvec[2] * cvec[2]);
                inv_rjk = T(1) / rjk;
            }
            const T* ub = &s.unit[3 * b];
            const T cos = ua[0] * ub[0] + ua[1] * ub[1] + ua[2] * ub[2];
            const int sb = nb_species[p0 + b];
            const int key = std::min(sa, sb) * n_elements + std::max(sa, sb);
            // (1 + lam cos)^zeta and d/dx for all powers: one chain of squarings per lambda
            for (int li = 0; li < 2; ++li) {
                if (!plan.lam_used[li]) continue;
                const T x = T(1) + (li ? cos : -cos);
                s.sq[0] = x;
                for (int k = 1; k < plan.chain_bits; ++k) s.sq[k] = s.sq[k - 1] * s.sq[k - 1];
                for (int pw = 0; pw < np; ++pw) {
                    const Power<T>& P = plan.powers[pw];
                    if (P.lam_index != li) continue;
                    T m;   // x^(zeta - 1)
                    if (P.izeta > 0) {
                        m = T(1);
                        for (int e = P.izeta - 1, k = 0; e > 0; e >>= 1, ++k)
                            if (e & 1) m *= s.sq[k];
                    } else {
                        m = x > T(0) ? std::pow(x, P.zeta - T(1)) : T(0);
                    }
                    s.pv[pw] = (P.izeta > 0 || x > T(0)) ? m * x : T(0);
                    s.pd[pw] = P.zeta * m;
                }
            }
            T dcos_a[3], dcos_b[3];   // d cos / d r_ij, d cos / d r_ik
            if (DERIV)
                for (int c = 0; c < 3; ++c) {
                    dcos_a[c] = (ub[c] - cos * ua[c]) * inv_ra;
                    dcos_b[c] = (ua[c] - cos * ub[c]) * inv_rb;
                }
            for (const auto& g : plan.groups) {
                if (ra >= g.rc || rb >= g.rc) continue;
                // radial part R of the group and its gradients Va = dR/dr_ij, Vb = dR/dr_ik
                const T wa = s.w[a * nt + g.term], wb = s.w[b * nt + g.term];
                T R = wa * wb, dRa = 0, dRb = 0, dRjk = 0;
                if (DERIV) {
                    dRa = s.dw[a * nt + g.term] * wb;
                    dRb = wa * s.dw[b * nt + g.term];
                }
                if (g.narrow) {
                    if (rjk >= g.rc) continue;
                    T wc, dwc;
                    radial_factor(rjk, Term<T>{g.eta, g.rs, g.rc}, cutoff_kind, wc, dwc);
                    if (DERIV) {
                        dRa *= wc;
                        dRb *= wc;
                        dRjk = R * dwc * inv_rjk;
                    }
                    R *= wc;
                }
                T Va[3], Vb[3];
                if (DERIV)
                    for (int c = 0; c < 3; ++c) {
                        Va[c] = dRa * ua[c] - dRjk * cvec[c];
                        Vb[c] = dRb * ub[c] + dRjk * cvec[c];
                    }
                for (const auto& f : g.fns) {
                    if (n_elements > 1 && f.key != key) continue;
                    const T cv = f.coef * s.pv[f.power];
                    u[f.col] += cv * R;
                    if (!DERIV) continue;
                    // d(cv R)/dr = cv dR/dr + coef lam zeta x^(zeta-1) R dcos/dr
                    const T Acos = f.coef_lam * s.pd[f.power] * R;
                    T* da = acc + f.col * 3;
                    T* db = dU + (size_t(p0 + b) * n_union + f.col) * 3;
                    for (int c = 0; c < 3; ++c) {
                        da[c] += cv * Va[c] + Acos * dcos_a[c];
                        db[c] += cv * Vb[c] + Acos * dcos_b[c];
                    }
                }
            }
        }
        if (DERIV) {
            T* da = dU + size_t(p0 + a) * n_union * 3;
            for (int c = 0; c < 3 * n_union; ++c) da[c] += acc[c];
        }
    }
}

template <class T>
int compute(int64_t n_local, int64_t n_pairs, const int64_t* center, const int32_t* nb_species,
            const int32_t* center_species, const T* rij, int32_t n_elements, int32_t n_union, int32_t n_fn,
            const double* fn_par, const int32_t* fn_int, const uint8_t* need, int32_t cutoff_kind, T* U, T* dU,
            int32_t threads) {
    if (n_local < 0 || n_pairs < 0 || n_elements < 1 || n_union < 0) return 1;
    if (cutoff_kind != COSINE && cutoff_kind != POLYNOMIAL) return 3;
    std::vector<Plan<T>> plans(n_elements);
    for (int e = 0; e < n_elements; ++e)
        if (!make_plan(e, n_elements, n_union, n_fn, fn_par, fn_int, need, plans[e])) return 3;
    // pair range of each centre; the pairs must be sorted by centre
    std::vector<int64_t> start(n_local + 1, 0);
    for (int64_t p = 0; p < n_pairs; ++p) {
        const int64_t c = center[p];
        if (c < 0 || c >= n_local || (p > 0 && c < center[p - 1])) return 1;
        if (nb_species[p] < 0 || nb_species[p] >= n_elements) return 2;
        ++start[c + 1];
    }
    for (int64_t i = 0; i < n_local; ++i) {
        if (center_species[i] < 0 || center_species[i] >= n_elements) return 2;
        start[i + 1] += start[i];
    }
    (void)threads;
#pragma omp parallel num_threads(threads > 0 ? threads : 1) if (threads > 1)
    {
        Scratch<T> s;
#pragma omp for schedule(dynamic, 4)
        for (int64_t i = 0; i < n_local; ++i) {
            const Plan<T>& plan = plans[center_species[i]];
            if (dU)
                one_centre<T, true>(i, start[i], start[i + 1], plan, n_union, n_elements, cutoff_kind, nb_species,
                                    rij, U, dU, s);
            else
                one_centre<T, false>(i, start[i], start[i + 1], plan, n_union, n_elements, cutoff_kind, nb_species,
                                     rij, U, dU, s);
        }
    }
    return 0;
}

}  // namespace

extern "C" {

// Symmetry functions of n_local centres from n_pairs pairs sorted by centre (see the file comment).
//   center (P) int64 < n_local; nb_species (P) int32 species of each pair's neighbour;
//   center_species (n_local) int32; rij (P x 3) r_ij = x_j - x_i;
//   functions (n_fn): fn_par (n_fn x 5) eta, rs, rc, zeta, lambda (zeta, lambda ignored for radial);
//     fn_int (n_fn x 4) kind (0 radial, 1 narrow, 2 wide), e1, e2 (neighbour elements; e2 ignored
//     for radial), column in U (< n_union);
//   need (n_elements x n_union) uint8: the columns each centre element needs (NULL: all);
//   cutoff_kind 0 cosine, 1 polynomial; U (n_local x n_union) out; dU (P x n_union x 3) out or NULL;
//   threads: OpenMP threads over centres (ignored when compiled without OpenMP).
// Returns 0, or 1 (pairs unsorted / centre out of range), 2 (species out of range), 3 (bad function).
int meltpot_acsf_f64(int64_t n_local, int64_t n_pairs, const int64_t* center, const int32_t* nb_species,
                     const int32_t* center_species, const double* rij, int32_t n_elements, int32_t n_union,
                     int32_t n_fn, const double* fn_par, const int32_t* fn_int, const uint8_t* need,
                     int32_t cutoff_kind, double* U, double* dU, int32_t threads) {
    return compute<double>(n_local, n_pairs, center, nb_species, center_species, rij, n_elements, n_union, n_fn,
                           fn_par, fn_int, need, cutoff_kind, U, dU, threads);
}

// The same in single precision (rij, U, dU float; the function table stays double).
int meltpot_acsf_f32(int64_t n_local, int64_t n_pairs, const int64_t* center, const int32_t* nb_species,
                     const int32_t* center_species, const float* rij, int32_t n_elements, int32_t n_union,
                     int32_t n_fn, const double* fn_par, const int32_t* fn_int, const uint8_t* need,
                     int32_t cutoff_kind, float* U, float* dU, int32_t threads) {
    return compute<float>(n_local, n_pairs, center, nb_species, center_species, rij, n_elements, n_union, n_fn,
                          fn_par, fn_int, need, cutoff_kind, U, dU, threads);
}

int meltpot_acsf_openmp(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

}  // extern "C"
