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
// with fc = 0 at r >= rc (each function its own rc), any n2p2 cutoff type with inner cutoff
// alpha rc, and element blocks: a radial function sums neighbours of one element, an angular one the
// pairs {j, k} whose species are {e1, e2} in either order. Non-integer zeta uses max(0, 1 + lam cos)^zeta.
//
// The element-weighted and compact types of n2p2 (12, 13, 20-25; see meltpot/descriptors/featureset.py)
// take a plain route per function (extra_functions): a loop over the neighbours, or over the pairs
// j < k of neighbours inside the function's rc, with the weights Z of the neighbours' elements.
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

// function kinds: the classic three, and the other types by their n2p2 number
enum Kind : int32_t {
    RADIAL = 0, NARROW = 1, WIDE = 2, W_RADIAL = 12, W_ANGULAR = 13, C_RADIAL = 20, C_NARROW = 21, C_WIDE = 22,
    WC_RADIAL = 23, WC_NARROW = 24, WC_WIDE = 25
};
// cutoff types: n2p2's CutoffFunction::CutoffType numbers
enum Cutoff : int32_t { HARD = 0, COSINE = 1, TANHU = 2, TANH = 3, EXP = 4, POLY1 = 5, POLYNOMIAL = 6, POLY3 = 7,
                        POLY4 = 8 };
constexpr int N_PAR = 8;   // fn_par columns: eta, rs, rc, zeta, lambda, rl, angle_left, angle_right (radians)
constexpr int N_INT = 5;   // fn_int columns: kind, e1, e2, column, core (1-4 poly1-4, 5 exp; +8 asymmetric)
constexpr double PI = 3.14159265358979323846;
constexpr double E = 2.71828182845904523536;

// A radial factor exp(-eta (r - rs)^2) fc(r): the radial functions and the per-pair part of the
// angular ones. One per distinct (eta, rs, rc) that a centre element needs.
template <class T>
struct Term {
    T eta, rs, rc;
    T inv_rc, pi_rc;       // 1 / rc and pi / rc (no division per pair or triplet)
    T rci, iw;             // inner cutoff alpha rc and 1 / (rc - rci)
};

// A weighted or compact function (n2p2 types 12, 13, 20-25): its own loops, see extra_functions.
template <class T>
struct Extra {
    int kind, col, e1, e2, core;
    bool asym;
    Term<T> term;          // 12, 13: the radial factor exp(-eta (r - rs)^2) fc(r)
    T zeta, lam, coef;     // 13: coef = 2^(1 - zeta)
    T rl, rc, al, ar;      // compact: radial bounds, angle bounds (radians)
};

template <class T>
struct RadFn {
    int term, col;
};

template <class T>
struct AngFn {
    int col, power, key;   // power: index into the plan's powers; key: e1 * n_elements + e2, e1 <= e2
    T coef, coef_lam;      // 2^(1 - zeta), 2^(1 - zeta) lambda
    int slot;              // index of col among the plan's angular columns (Plan::ang_cols)
};

template <class T>
struct AngGroup {          // angular functions sharing (type, eta, rs, rc)
    int term;
    int narrow_term;       // narrow groups: index into Plan::narrow_terms (the r_jk factor), else -1
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
    std::vector<int> narrow_terms;   // distinct terms of the narrow groups (their r_jk factor)
    std::vector<int> ang_cols;       // the union columns of the angular functions
    std::vector<Extra<T>> extra;     // weighted and compact functions
    T ang_rc = 0;              // largest rc of the angular groups
    bool any_narrow = false, all_narrow = false;
};

// n2p2's core function c(x) on 0 <= x < 1 and dc/dx: 1-4 the polynomials poly1-poly4, 5
// exp(1 - 1/(1 - x^2)); asymmetric: c((2 - x) x).
template <class T>
inline void core_function(T x, int core, bool asym, T& f, T& df) {
    T chain = T(1);
    if (asym) {
        chain = T(2) - T(2) * x;
        x = (T(2) - x) * x;
    }
    const T x2 = x * x;
    switch (core) {
        case 1:
            f = (T(2) * x - T(3)) * x2 + T(1);
            df = x * (T(6) * x - T(6));
            break;
        case 2:
            f = ((T(15) - T(6) * x) * x - T(10)) * x2 * x + T(1);
            df = x2 * ((T(60) - T(30) * x) * x - T(30));
            break;
        case 3:
            f = (x * (x * (T(20) * x - T(70)) + T(84)) - T(35)) * x2 * x2 + T(1);
            df = x2 * x * (x * (x * (T(140) * x - T(420)) + T(420)) - T(140));
            break;
        case 4:
            f = (x * (x * ((T(315) - T(70) * x) * x - T(540)) + T(420)) - T(126)) * x2 * x2 * x + T(1);
            df = x2 * x2 * (x * (x * ((T(2520) - T(630) * x) * x - T(3780)) + T(2520)) - T(630));
            break;
        default: {
            const T t = T(1) / (x2 - T(1));
            f = T(E) * std::exp(t);
            df = T(-2) * x * t * t * f;
        }
    }
    df *= chain;
}

// n2p2's compact function on (left, right): c(|a - m| / w), m the centre, w the half width; 0 outside
template <class T>
inline void compact(T a, T left, T right, int core, bool asym, T& f, T& df) {
    const T w = T(0.5) * (right - left);
    const T x = (a - T(0.5) * (left + right)) / w;
    if (!(a > left && a < right) || std::abs(x) >= T(1)) {
        f = 0;
        df = 0;
        return;
    }
    core_function(std::abs(x), core, asym, f, df);
    df = x > T(0) ? df / w : x < T(0) ? -df / w : T(0);
}

template <class T>
inline void cutoff(T r, const Term<T>& t, int kind, T& f, T& df) {
    if (r >= t.rc) {
        f = 0;
        df = 0;
        return;
    }
    if (t.rci == T(0) && kind == COSINE) {
        const T a = t.pi_rc;
        f = T(0.5) * (std::cos(a * r) + T(1));
        df = T(-0.5) * a * std::sin(a * r);
    } else if (t.rci == T(0) && kind == POLYNOMIAL) {
        const T x = r * t.inv_rc;
        f = ((T(15) - T(6) * x) * x - T(10)) * x * x * x + T(1);
        const T y = x * (T(1) - x);
        df = T(-30) * y * y * t.inv_rc;
    } else if (kind == HARD) {
        f = 1;
        df = 0;
    } else if (kind == TANHU || kind == TANH) {   // tanh^3(1 - r/rc) [/ tanh^3(1)], without alpha
        const T h = std::tanh(T(1) - r * t.inv_rc);
        const T scale = kind == TANH ? T(1) / T(std::pow(std::tanh(1.0), 3)) : T(1);
        f = scale * h * h * h;
        df = scale * T(3) * h * h * (h * h - T(1)) * t.inv_rc;
    } else if (r <= t.rci) {
        f = 1;
        df = 0;
    } else {
        const T x = (r - t.rci) * t.iw;
        if (kind == COSINE) {
            f = T(0.5) * (std::cos(T(PI) * x) + T(1));
            df = T(-0.5) * T(PI) * t.iw * std::sin(T(PI) * x);
        } else {
            core_function(x, kind == EXP ? 5 : kind - POLY1 + 1, false, f, df);
            df *= t.iw;
        }
    }
}

// w = exp(-eta (r - rs)^2) fc(r) and dw/dr
template <class T>
inline void radial_factor(T r, const Term<T>& t, int kind, T& w, T& dw) {
    T f, df;
    cutoff(r, t, kind, f, df);
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
Term<T> make_term(T eta, T rs, T rc, double alpha) {
    const T rci = T(alpha * double(rc));
    return {eta, rs, rc, T(1) / rc, T(PI) / rc, rci, T(1) / (rc - rci)};
}

template <class T>
int find_term(std::vector<Term<T>>& terms, T eta, T rs, T rc, double alpha) {
    for (size_t k = 0; k < terms.size(); ++k)
        if (terms[k].eta == eta && terms[k].rs == rs && terms[k].rc == rc) return int(k);
    terms.push_back(make_term(eta, rs, rc, alpha));
    return int(terms.size()) - 1;
}

// A weighted or compact function from its table row; false if the row is invalid.
template <class T>
bool make_extra(const double* p, const int32_t* q, int n_elements, double alpha, Extra<T>& x) {
    const int kind = q[0];
    const bool resolved = kind == C_RADIAL || kind == C_NARROW || kind == C_WIDE;
    const bool angular = kind == W_ANGULAR || kind == C_NARROW || kind == C_WIDE || kind == WC_NARROW ||
                         kind == WC_WIDE;
    const bool compact_kind = kind >= C_RADIAL;
    if (kind != W_RADIAL && kind != W_ANGULAR && !(kind >= C_RADIAL && kind <= WC_WIDE)) return false;
    x.kind = kind;
    x.col = q[3];
    x.e1 = resolved ? q[1] : -1;
    x.e2 = resolved && angular ? q[2] : -1;
    x.core = q[4] & 7;
    x.asym = (q[4] & 8) != 0;
    if (resolved && (x.e1 < 0 || x.e1 >= n_elements)) return false;
    if (resolved && angular && (x.e2 < 0 || x.e2 >= n_elements)) return false;
    if (!(p[2] > 0.0)) return false;
    x.term = make_term(T(p[0]), T(p[1]), T(p[2]), alpha);
    x.zeta = T(p[3]);
    x.lam = T(p[4]);
    x.coef = T(std::exp2(1.0 - p[3]));
    x.rl = T(p[5]);
    x.rc = T(p[2]);
    x.al = T(p[6]);
    x.ar = T(p[7]);
    if (kind == W_ANGULAR && !(p[3] >= 1.0)) return false;
    if (compact_kind && (x.core < 1 || x.core > 5 || !(p[5] < p[2]) || (angular && !(p[6] < p[7])))) return false;
    return true;
}

// Plan of element e from the function table (fn_par: eta, rs, rc, zeta, lambda; fn_int: kind,
// e1, e2, column). Returns false on an invalid table.
template <class T>
bool make_plan(int e, int n_elements, int n_union, int n_fn, const double* fn_par, const int32_t* fn_int,
               const uint8_t* need, double alpha, Plan<T>& plan) {
    plan.rad_by_elem.assign(n_elements, {});
    std::vector<double> group_key;   // (kind, eta, rs, rc) of each group
    for (int f = 0; f < n_fn; ++f) {
        const double* p = fn_par + N_PAR * f;
        const int32_t* q = fn_int + N_INT * f;
        const int kind = q[0], e1 = q[1], e2 = q[2], col = q[3];
        if (col < 0 || col >= n_union) return false;
        if (kind > WIDE) {
            Extra<T> x;
            if (!make_extra(p, q, n_elements, alpha, x)) return false;
            if (!need || need[size_t(e) * n_union + col]) plan.extra.push_back(x);
            continue;
        }
        if (e1 < 0 || e1 >= n_elements) return false;
        if (need && !need[size_t(e) * n_union + col]) continue;
        const T eta = T(p[0]), rs = T(p[1]), rc = T(p[2]);
        if (!(rc > T(0))) return false;
        if (kind == RADIAL) {
            plan.rad_by_elem[e1].push_back({find_term(plan.terms, eta, rs, rc, alpha), col});
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
            plan.groups.push_back({find_term(plan.terms, eta, rs, rc, alpha), -1, kind == NARROW, eta, rs, rc, {}});
        }
        const int li = lam > 0 ? 1 : 0;
        const int izeta = zeta == std::floor(zeta) && zeta < 1 << 30 ? int(zeta) : 0;
        int pw = 0;
        for (; pw < int(plan.powers.size()); ++pw)
            if (plan.powers[pw].lam_index == li && plan.powers[pw].zeta == T(zeta)) break;
        if (pw == int(plan.powers.size())) plan.powers.push_back({li, izeta, T(zeta)});
        const int lo = std::min(e1, e2), hi = std::max(e1, e2);
        int slot = int(std::find(plan.ang_cols.begin(), plan.ang_cols.end(), col) - plan.ang_cols.begin());
        if (slot == int(plan.ang_cols.size())) plan.ang_cols.push_back(col);
        plan.groups[g].fns.push_back({col, pw, lo * n_elements + hi, T(std::exp2(1.0 - zeta)),
                                      T(std::exp2(1.0 - zeta) * lam), slot});
    }
    plan.all_narrow = !plan.groups.empty();
    for (auto& g : plan.groups) {
        plan.ang_rc = std::max(plan.ang_rc, g.rc);
        plan.any_narrow = plan.any_narrow || g.narrow;
        plan.all_narrow = plan.all_narrow && g.narrow;
        if (!g.narrow) continue;
        const auto it = std::find(plan.narrow_terms.begin(), plan.narrow_terms.end(), g.term);
        g.narrow_term = int(it - plan.narrow_terms.begin());
        if (it == plan.narrow_terms.end()) plan.narrow_terms.push_back(g.term);
    }
    return true;
}

// Scratch of one thread: per neighbour of the current centre, and per partner k of one pair j
// (structure of arrays, so that the loops over partners run as simple independent iterations).
template <class T>
struct Scratch {
    std::vector<T> r, inv_r, unit, w, dw;   // unit: 3 per pair; w, dw: n_terms per pair
    std::vector<int> ang;                   // neighbours with r < ang_rc
    // angular neighbours a (index into ang): position, unit vector, 1/r, species, w/dw per term
    std::vector<T> ax, ay, az, ux, uy, uz, ar, air, aw, adw;
    std::vector<int32_t> asp;
    std::vector<int64_t> arow;              // offset of the pair's dU row
    // partners k of the current j (index kk < m)
    std::vector<int> kept;
    std::vector<int32_t> key;
    std::vector<T> cx, cy, cz, cs, rjk, irjk, dca, dcb;   // r_jk vector, cos, |r_jk|, d cos / d r (3 x)
    std::vector<T> wc, dwc;                 // r_jk factor and (d/dr)/r_jk per narrow term
    std::vector<T> pv, pd;                  // (1 + lam cos)^zeta and zeta (1 + lam cos)^(zeta-1) per power
    std::vector<T> R, va, vb;               // radial part of a group and its gradients (3 x)
    std::vector<T> dang;                    // angular derivatives of the centre, [slot][a][xyz]
};

// x^e for an integer e >= 0 by squaring (the same products in the same order for every caller)
template <class T>
inline T ipow(T x, int e) {
    T m = T(1);
    for (; e > 0; e >>= 1) {
        if (e & 1) m *= x;
        x *= x;
    }
    return m;
}

// The angular functions of one centre: sums over its neighbour pairs {j, k} (j < k in the order
// of the angular neighbours). Per j the partners k are gathered first (narrow-only plans keep
// those with r_jk < rc); then each per-triplet quantity is one loop over the partners.
// A triplet whose distances reach a group's rc contributes exact zeros (w = dw = 0 there).
template <class T, bool DERIV>
void angular(int64_t p0, const Plan<T>& plan, int n_union, int n_elements, int cutoff_kind,
             const int32_t* nb_species, const T* rij, T* u, T* dU, Scratch<T>& s) {
    const int na = int(s.ang.size());
    if (na < 2) return;
    const int nt = int(plan.terms.size());
    const int npw = int(plan.powers.size());
    const int nnt = int(plan.narrow_terms.size());
    for (auto* v : {&s.ax, &s.ay, &s.az, &s.ux, &s.uy, &s.uz, &s.ar, &s.air, &s.cx, &s.cy, &s.cz, &s.cs, &s.rjk,
                    &s.irjk, &s.R})
        v->resize(na);
    for (auto* v : {&s.dca, &s.dcb, &s.va, &s.vb}) v->resize(3 * size_t(na));
    s.aw.resize(size_t(nt) * na);
    s.adw.resize(size_t(nt) * na);
    s.wc.resize(size_t(std::max(nnt, 1)) * na);
    s.dwc.resize(size_t(std::max(nnt, 1)) * na);
    s.pv.resize(size_t(std::max(npw, 1)) * na);
    s.pd.resize(size_t(std::max(npw, 1)) * na);
    s.asp.resize(na);
    s.arow.resize(na);
    s.kept.resize(na);
    s.key.resize(na);
    const int nslot = int(plan.ang_cols.size());
    if (DERIV) s.dang.assign(size_t(nslot) * na * 3, T(0));
    for (int ia = 0; ia < na; ++ia) {
        const int a = s.ang[ia];
        const T* v = rij + 3 * (p0 + a);
        s.ax[ia] = v[0];
        s.ay[ia] = v[1];
        s.az[ia] = v[2];
        s.ux[ia] = s.unit[3 * a];
        s.uy[ia] = s.unit[3 * a + 1];
        s.uz[ia] = s.unit[3 * a + 2];
        s.ar[ia] = s.r[a];
        s.air[ia] = s.inv_r[a];
        s.asp[ia] = nb_species[p0 + a];
        s.arow[ia] = (p0 + a) * int64_t(n_union) * 3;
        for (int t = 0; t < nt; ++t) {
            s.aw[size_t(t) * na + ia] = s.w[size_t(a) * nt + t];
            s.adw[size_t(t) * na + ia] = s.dw[size_t(a) * nt + t];
        }
    }
    const T ang_rc2 = plan.ang_rc * plan.ang_rc;
    int* K = s.kept.data();
    for (int ia = 0; ia + 1 < na; ++ia) {
        const T xa = s.ax[ia], ya = s.ay[ia], za = s.az[ia];
        const T uxa = s.ux[ia], uya = s.uy[ia], uza = s.uz[ia];
        const T ra = s.ar[ia], inv_ra = s.air[ia];
        // partners k > j (a branch-free pass: about half the candidates drop out in a liquid)
        int m = 0;
        if (plan.all_narrow) {
            for (int ib = ia + 1; ib < na; ++ib) {
                const T dx = s.ax[ib] - xa, dy = s.ay[ib] - ya, dz = s.az[ib] - za;
                K[m] = ib;
                m += dx * dx + dy * dy + dz * dz < ang_rc2;
            }
        } else {
            for (int ib = ia + 1; ib < na; ++ib) K[m++] = ib;
        }
        if (m == 0) continue;
        // geometry: r_jk = r_ik - r_ij, cos theta, d cos / d r_ij and d cos / d r_ik
        T* dca0 = s.dca.data();
        T* dca1 = dca0 + na;
        T* dca2 = dca1 + na;
        T* dcb0 = s.dcb.data();
        T* dcb1 = dcb0 + na;
        T* dcb2 = dcb1 + na;
        for (int kk = 0; kk < m; ++kk) {
            const int b = K[kk];
            const T cx = s.ax[b] - xa, cy = s.ay[b] - ya, cz = s.az[b] - za;
            s.cx[kk] = cx;
            s.cy[kk] = cy;
            s.cz[kk] = cz;
            const T uxb = s.ux[b], uyb = s.uy[b], uzb = s.uz[b];
            const T c = uxa * uxb + uya * uyb + uza * uzb;
            s.cs[kk] = c;
            if (DERIV) {
                const T inv_rb = s.air[b];
                dca0[kk] = (uxb - c * uxa) * inv_ra;
                dca1[kk] = (uyb - c * uya) * inv_ra;
                dca2[kk] = (uzb - c * uza) * inv_ra;
                dcb0[kk] = (uxa - c * uxb) * inv_rb;
                dcb1[kk] = (uya - c * uyb) * inv_rb;
                dcb2[kk] = (uza - c * uzb) * inv_rb;
            }
        }
        if (plan.any_narrow)
            for (int kk = 0; kk < m; ++kk) {
                const T r = std::sqrt(s.cx[kk] * s.cx[kk] + s.cy[kk] * s.cy[kk] + s.cz[kk] * s.cz[kk]);
                s.rjk[kk] = r;
                if (DERIV) s.irjk[kk] = T(1) / r;
            }
        if (n_elements > 1) {
            const int32_t sa = s.asp[ia];
            for (int kk = 0; kk < m; ++kk) {
                const int32_t sb = s.asp[K[kk]];
                s.key[kk] = std::min(sa, sb) * n_elements + std::max(sa, sb);
            }
        }
        // the r_jk factor exp(-eta (r_jk - rs)^2) fc(r_jk) of each narrow term, (d/dr) / r_jk
        for (int tn = 0; tn < nnt; ++tn) {
            const Term<T>& term = plan.terms[plan.narrow_terms[tn]];
            T* wc = &s.wc[size_t(tn) * na];
            T* dwc = &s.dwc[size_t(tn) * na];
            for (int kk = 0; kk < m; ++kk) {
                T w, dw;
                radial_factor(s.rjk[kk], term, cutoff_kind, w, dw);
                wc[kk] = w;
                if (DERIV) dwc[kk] = dw * s.irjk[kk];
            }
        }
        // (1 + lam cos)^zeta and zeta (1 + lam cos)^(zeta - 1); non-integer zeta: max(0, x)
        for (int pw = 0; pw < npw; ++pw) {
            const Power<T>& P = plan.powers[pw];
            T* pv = &s.pv[size_t(pw) * na];
            T* pd = &s.pd[size_t(pw) * na];
            if (P.izeta > 0) {
                for (int kk = 0; kk < m; ++kk) {
                    const T x = T(1) + (P.lam_index ? s.cs[kk] : -s.cs[kk]);
                    const T mm = ipow(x, P.izeta - 1);
                    pv[kk] = mm * x;
                    pd[kk] = P.zeta * mm;
                }
            } else {
                for (int kk = 0; kk < m; ++kk) {
                    const T x = T(1) + (P.lam_index ? s.cs[kk] : -s.cs[kk]);
                    const T mm = x > T(0) ? std::pow(x, P.zeta - T(1)) : T(0);
                    pv[kk] = x > T(0) ? mm * x : T(0);
                    pd[kk] = P.zeta * mm;
                }
            }
        }
        T* va0 = s.va.data();
        T* va1 = va0 + na;
        T* va2 = va1 + na;
        T* vb0 = s.vb.data();
        T* vb1 = vb0 + na;
        T* vb2 = vb1 + na;
        T* RR = s.R.data();
        for (const auto& g : plan.groups) {
            if (ra >= g.rc) continue;   // w(r_ij) = 0: no contribution
            // radial part R = w(r_ij) w(r_ik) [w(r_jk)] and its gradients Va = dR/dr_ij, Vb = dR/dr_ik
            const T wa = s.aw[size_t(g.term) * na + ia], dwa = s.adw[size_t(g.term) * na + ia];
            const T* wb = &s.aw[size_t(g.term) * na];
            const T* dwb = &s.adw[size_t(g.term) * na];
            if (g.narrow) {
                const T* wc = &s.wc[size_t(g.narrow_term) * na];
                const T* dwc = &s.dwc[size_t(g.narrow_term) * na];
                for (int kk = 0; kk < m; ++kk) {
                    const int b = K[kk];
                    const T R0 = wa * wb[b];
                    RR[kk] = R0 * wc[kk];
                    if (DERIV) {
                        const T dRa = dwa * wb[b] * wc[kk], dRb = wa * dwb[b] * wc[kk];
                        const T dRjk = R0 * dwc[kk];
                        va0[kk] = dRa * uxa - dRjk * s.cx[kk];
                        va1[kk] = dRa * uya - dRjk * s.cy[kk];
                        va2[kk] = dRa * uza - dRjk * s.cz[kk];
                        vb0[kk] = dRb * s.ux[b] + dRjk * s.cx[kk];
                        vb1[kk] = dRb * s.uy[b] + dRjk * s.cy[kk];
                        vb2[kk] = dRb * s.uz[b] + dRjk * s.cz[kk];
                    }
                }
            } else {
                for (int kk = 0; kk < m; ++kk) {
                    const int b = K[kk];
                    RR[kk] = wa * wb[b];
                    if (DERIV) {
                        const T dRa = dwa * wb[b], dRb = wa * dwb[b];
                        va0[kk] = dRa * uxa;
                        va1[kk] = dRa * uya;
                        va2[kk] = dRa * uza;
                        vb0[kk] = dRb * s.ux[b];
                        vb1[kk] = dRb * s.uy[b];
                        vb2[kk] = dRb * s.uz[b];
                    }
                }
            }
            for (const auto& f : g.fns) {
                const T* pv = &s.pv[size_t(f.power) * na];
                const T* pd = &s.pd[size_t(f.power) * na];
                const bool all = n_elements == 1;
                T* dslot = DERIV ? &s.dang[size_t(f.slot) * na * 3] : nullptr;
                T su = 0, d0 = 0, d1 = 0, d2 = 0;
                for (int kk = 0; kk < m; ++kk) {
                    if (!all && s.key[kk] != f.key) continue;
                    const T cv = f.coef * pv[kk];
                    su += cv * RR[kk];
                    if (!DERIV) continue;
                    // d(cv R)/dr = cv dR/dr + coef lam zeta x^(zeta-1) R dcos/dr
                    const T A = f.coef_lam * pd[kk] * RR[kk];
                    d0 += cv * va0[kk] + A * dca0[kk];
                    d1 += cv * va1[kk] + A * dca1[kk];
                    d2 += cv * va2[kk] + A * dca2[kk];
                    T* db = dslot + 3 * K[kk];
                    db[0] += cv * vb0[kk] + A * dcb0[kk];
                    db[1] += cv * vb1[kk] + A * dcb1[kk];
                    db[2] += cv * vb2[kk] + A * dcb2[kk];
                }
                u[f.col] += su;
                if (DERIV) {
                    dslot[3 * ia] += d0;
                    dslot[3 * ia + 1] += d1;
                    dslot[3 * ia + 2] += d2;
                }
            }
        }
    }
    if (!DERIV) return;
    // into the pairs' rows of dU (their angular columns are still zero)
    for (int sl = 0; sl < nslot; ++sl) {
        const int col = plan.ang_cols[sl];
        const T* d = &s.dang[size_t(sl) * na * 3];
        for (int ia = 0; ia < na; ++ia) {
            T* row = dU + s.arow[ia] + 3 * col;
            row[0] = d[3 * ia];
            row[1] = d[3 * ia + 1];
            row[2] = d[3 * ia + 2];
        }
    }
}

// The weighted and compact functions of one centre (n2p2 types 12, 13, 20-25), by the formulas of
// meltpot/descriptors/featureset.py. Radial: a sum over the neighbours; angular: over the pairs
// j < k of the neighbours inside the function's bounds, with V = W A(cos) R_ij R_ik [R_jk]:
//   dV/dr_ij = W (dA/dcos dcos/dr_ij R + A dR/dr_ij), dcos/dr_ij = (u_ik - cos u_ij) / r_ij,
// and r_jk = r_ik - r_ij moving both pairs. Their dU columns are zero until here.
template <class T, bool DERIV>
void extra_functions(int64_t p0, int64_t n, const Plan<T>& plan, int n_union, int cutoff_kind,
                     const int32_t* nb_species, const T* rij, const T* z, T* u, T* dU, Scratch<T>& s) {
    std::vector<int>& list = s.kept;
    for (const Extra<T>& x : plan.extra) {
        const bool resolved = x.e1 >= 0;
        const bool compact_kind = x.kind >= C_RADIAL;
        // the radial factor of one distance, value and derivative
        auto factor = [&](T r, T& w, T& dw) {
            if (compact_kind)
                compact(r, x.rl, x.rc, x.core, x.asym, w, dw);
            else
                radial_factor(r, x.term, cutoff_kind, w, dw);
        };
        if (x.kind == W_RADIAL || x.kind == C_RADIAL || x.kind == WC_RADIAL) {
            T su = 0;
            for (int64_t a = 0; a < n; ++a) {
                const int32_t sp = nb_species[p0 + a];
                if (resolved && sp != x.e1) continue;
                T w, dw;
                factor(s.r[a], w, dw);
                const T zw = resolved ? T(1) : z[sp];
                su += zw * w;
                if (DERIV) {
                    T* d = dU + (size_t(p0 + a) * n_union + x.col) * 3;
                    for (int c = 0; c < 3; ++c) d[c] += zw * dw * s.unit[3 * a + c];
                }
            }
            u[x.col] += su;
            continue;
        }
        const bool narrow = x.kind == W_ANGULAR || x.kind == C_NARROW || x.kind == WC_NARROW;
        list.clear();
        for (int64_t a = 0; a < n; ++a) {
            const int32_t sp = nb_species[p0 + a];
            if (s.r[a] >= x.rc || (compact_kind && s.r[a] <= x.rl)) continue;
            if (resolved && sp != x.e1 && sp != x.e2) continue;
            list.push_back(int(a));
        }
        T su = 0;
        for (size_t ia = 0; ia + 1 < list.size(); ++ia) {
            const int a = list[ia];
            const int32_t sa = nb_species[p0 + a];
            const T ra = s.r[a];
            const T* ua = &s.unit[3 * a];
            T wa, dwa;
            factor(ra, wa, dwa);
            for (size_t ib = ia + 1; ib < list.size(); ++ib) {
                const int b = list[ib];
                const int32_t sb = nb_species[p0 + b];
                if (resolved && !((sa == x.e1 && sb == x.e2) || (sa == x.e2 && sb == x.e1))) continue;
                const T rb = s.r[b];
                const T* ub = &s.unit[3 * b];
                const T* va = rij + 3 * (p0 + a);
                const T* vb = rij + 3 * (p0 + b);
                const T cv[3] = {vb[0] - va[0], vb[1] - va[1], vb[2] - va[2]};
                T wc = 1, dwc = 0, rc_ = 1;
                if (narrow) {
                    rc_ = std::sqrt(cv[0] * cv[0] + cv[1] * cv[1] + cv[2] * cv[2]);
                    if (rc_ >= x.rc) continue;
                    factor(rc_, wc, dwc);
                }
                const T c = ua[0] * ub[0] + ua[1] * ub[1] + ua[2] * ub[2];
                T A, dA;   // angular factor and dA/dcos
                if (compact_kind) {
                    if (c <= T(-1) || c >= T(1)) continue;
                    const T theta = std::acos(c);
                    if (theta < x.al || theta > x.ar) continue;
                    T dth;
                    compact(theta, x.al, x.ar, x.core, false, A, dth);   // never asymmetric (as n2p2)
                    dA = -dth / std::sqrt(T(1) - c * c);
                } else {
                    const T base = T(1) + x.lam * c;
                    if (base <= T(0)) continue;
                    const T pm = std::pow(base, x.zeta - T(1));
                    A = x.coef * pm * base;
                    dA = x.coef * x.zeta * x.lam * pm;
                }
                T wb, dwb;
                factor(rb, wb, dwb);
                const T W = resolved ? T(1) : z[sa] * z[sb];
                const T R = wa * wb * wc;
                su += W * A * R;
                if (!DERIV) continue;
                T* da = dU + (size_t(p0 + a) * n_union + x.col) * 3;
                T* db = dU + (size_t(p0 + b) * n_union + x.col) * 3;
                const T ga = W * dA * R / ra, gb = W * dA * R / rb;   // times (u_b - c u_a), (u_a - c u_b)
                const T ha = W * A * dwa * wb * wc, hb = W * A * wa * dwb * wc;
                const T hc = narrow ? W * A * wa * wb * dwc / rc_ : T(0);
                for (int k = 0; k < 3; ++k) {
                    da[k] += ga * (ub[k] - c * ua[k]) + ha * ua[k] - hc * cv[k];
                    db[k] += gb * (ua[k] - c * ub[k]) + hb * ub[k] + hc * cv[k];
                }
            }
        }
        u[x.col] += su;
    }
}

template <class T, bool DERIV>
void one_centre(int64_t i, int64_t p0, int64_t p1, const Plan<T>& plan, int n_union, int n_elements,
                int cutoff_kind, const int32_t* nb_species, const T* rij, const T* z, T* U, T* dU, Scratch<T>& s) {
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
    if (!plan.extra.empty()) extra_functions<T, DERIV>(p0, n, plan, n_union, cutoff_kind, nb_species, rij, z, u, dU, s);
    if (plan.groups.empty()) return;
    angular<T, DERIV>(p0, plan, n_union, n_elements, cutoff_kind, nb_species, rij, u, dU, s);
}

template <class T>
int compute(int64_t n_local, int64_t n_pairs, const int64_t* center, const int32_t* nb_species,
            const int32_t* center_species, const T* rij, int32_t n_elements, int32_t n_union, int32_t n_fn,
            const double* fn_par, const int32_t* fn_int, const uint8_t* need, int32_t cutoff_kind,
            double cutoff_alpha, const double* weights, T* U, T* dU, int32_t threads) {
    if (n_local < 0 || n_pairs < 0 || n_elements < 1 || n_union < 0) return 1;
    if (cutoff_kind < HARD || cutoff_kind > POLY4 || !(cutoff_alpha >= 0.0 && cutoff_alpha < 1.0)) return 3;
    std::vector<Plan<T>> plans(n_elements);
    for (int e = 0; e < n_elements; ++e)
        if (!make_plan(e, n_elements, n_union, n_fn, fn_par, fn_int, need, cutoff_alpha, plans[e])) return 3;
    std::vector<T> z(n_elements, T(0));   // the weights of the weighted types (atomic numbers)
    for (int e = 0; e < n_elements && weights; ++e) z[e] = T(weights[e]);
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
                                    rij, z.data(), U, dU, s);
            else
                one_centre<T, false>(i, start[i], start[i + 1], plan, n_union, n_elements, cutoff_kind, nb_species,
                                     rij, z.data(), U, dU, s);
        }
    }
    return 0;
}

}  // namespace

extern "C" {

// Symmetry functions of n_local centres from n_pairs pairs sorted by centre (see the file comment).
//   center (P) int64 < n_local; nb_species (P) int32 species of each pair's neighbour;
//   center_species (n_local) int32; rij (P x 3) r_ij = x_j - x_i;
//   functions (n_fn): fn_par (n_fn x 8): eta, rs, rc, zeta, lambda, rl, angle_left, angle_right
//     (radians; unused entries 0); fn_int (n_fn x 5) kind (0 radial, 1 narrow, 2 wide, else the n2p2
//     type 12, 13, 20-25), e1, e2 (neighbour elements; unused ones ignored), column in U (< n_union),
//     core of the compact types (1-4 poly1-poly4, 5 exp; +8 asymmetric radial factor);
//   need (n_elements x n_union) uint8: the columns each centre element needs (NULL: all);
//   cutoff_kind: n2p2's cutoff type 0-8, cutoff_alpha its inner-cutoff fraction (0 <= alpha < 1);
//   weights (n_elements): the weights Z of the weighted types (NULL: 0);
//   U (n_local x n_union) out; dU (P x n_union x 3) out or NULL;
//   threads: OpenMP threads over centres (ignored when compiled without OpenMP).
// Returns 0, or 1 (pairs unsorted / centre out of range), 2 (species out of range), 3 (bad function).
int meltpot_acsf_f64(int64_t n_local, int64_t n_pairs, const int64_t* center, const int32_t* nb_species,
                     const int32_t* center_species, const double* rij, int32_t n_elements, int32_t n_union,
                     int32_t n_fn, const double* fn_par, const int32_t* fn_int, const uint8_t* need,
                     int32_t cutoff_kind, double cutoff_alpha, const double* weights, double* U, double* dU,
                     int32_t threads) {
    return compute<double>(n_local, n_pairs, center, nb_species, center_species, rij, n_elements, n_union, n_fn,
                           fn_par, fn_int, need, cutoff_kind, cutoff_alpha, weights, U, dU, threads);
}

// The same in single precision (rij, U, dU float; the function table stays double).
int meltpot_acsf_f32(int64_t n_local, int64_t n_pairs, const int64_t* center, const int32_t* nb_species,
                     const int32_t* center_species, const float* rij, int32_t n_elements, int32_t n_union,
                     int32_t n_fn, const double* fn_par, const int32_t* fn_int, const uint8_t* need,
                     int32_t cutoff_kind, double cutoff_alpha, const double* weights, float* U, float* dU,
                     int32_t threads) {
    return compute<float>(n_local, n_pairs, center, nb_species, center_species, rij, n_elements, n_union, n_fn,
                          fn_par, fn_int, need, cutoff_kind, cutoff_alpha, weights, U, dU, threads);
}

int meltpot_acsf_openmp(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

}  // extern "C"
