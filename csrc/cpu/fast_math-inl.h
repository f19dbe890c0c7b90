// Per-target vector exponentials cheaper than Highway's general hn::Exp, for kernels whose inputs
// lie in known ranges (the caller clamps): no overflow, underflow or NaN handling, base 2 inside.
// Float32 only. Include after hwy/highway.h inside a foreach_target translation unit.

#if defined(GEMMACPP_CPU_FAST_MATH_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef GEMMACPP_CPU_FAST_MATH_INL_H_
#undef GEMMACPP_CPU_FAST_MATH_INL_H_
#else
#define GEMMACPP_CPU_FAST_MATH_INL_H_
#endif

#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace gemmacpp::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Adding this to y in [-126, 127] rounds it to an integer q (float spacing is 1 at 1.5 * 2^23),
// and leaves q + 127 in the low mantissa bits of the sum: shifted into the exponent field, that
// is the bit pattern of 2^q, a normal float. No round or convert instructions are needed.
constexpr float kExp2Magic = 12583039.0f;  // 1.5 * 2^23 + 127

// 2^q from a sum t = y + kExp2Magic.
template <class D, class V = hn::Vec<D>>
HWY_INLINE V Exp2Scale(D d, V t) {
  const hn::RebindToSigned<D> di;
  return hn::BitCast(d, hn::ShiftLeft<23>(hn::BitCast(di, t)));
}

// P(f) with 2^f - 1 = f P(f) for |f| <= 1/2: degree 5, fitted for least relative error (1.1e-8;
// about 1.2e-7 once evaluated in float32). Written as f P(f), 2^f - 1 keeps its relative
// precision as f -> 0, so Exp2AndExp2m1 needs no cancelling subtraction there.
template <class D, class V = hn::Vec<D>>
HWY_INLINE V Exp2Poly(D d, V f) {
  V P = hn::MulAdd(hn::Set(d, 1.540351223e-4f), f, hn::Set(d, 1.339073526e-3f));
  P = hn::MulAdd(P, f, hn::Set(d, 9.618237615e-3f));
  P = hn::MulAdd(P, f, hn::Set(d, 5.550357327e-2f));
  P = hn::MulAdd(P, f, hn::Set(d, 2.402264923e-1f));
  return hn::MulAdd(P, f, hn::Set(d, 6.931471825e-1f));
}

// 1 + e^-g, a sigmoid's denominator, for g in [-87, 87] (not checked: the caller clamps);
// relative error about 1.5e-7. -g log2(e) = q + f with |f| <= 1/2; both FMAs take the exact
// product g log2(e), so f carries no rounding error of that product (targets without FMA, such
// as SSE4, round it: up to 6e-8 |g| relative error in the result). log2(e) itself is rounded to
// float, a relative error of |g| 1.3e-8 in e^-g, below the polynomial's for |g| < 10.
template <class D, class V = hn::Vec<D>>
HWY_INLINE V OnePlusExpNeg(D d, V g) {
  const V magic = hn::Set(d, kExp2Magic), neg_log2e = hn::Set(d, -1.44269504088896341f);
  const V one = hn::Set(d, 1.0f);
  const V t = hn::MulAdd(g, neg_log2e, magic);
  const V f = hn::MulAdd(g, neg_log2e, hn::Sub(magic, t));
  return hn::MulAdd(Exp2Scale(d, t), hn::MulAdd(Exp2Poly(d, f), f, one), one);
}

// y in [-126, 127] (not checked: the caller clamps) split as 2^y = s (1 + fP): s = 2^q for the
// integer q nearest y, and fP = 2^f - 1 for f = y - q (exact), to its own relative precision.
template <class D, class V = hn::Vec<D>>
HWY_INLINE void Exp2Parts(D d, V y, V& s, V& fP) {
  const V magic = hn::Set(d, kExp2Magic);
  const V t = hn::Add(y, magic);
  const V f = hn::Sub(y, hn::Sub(t, magic));
  s = Exp2Scale(d, t);
  fP = hn::Mul(Exp2Poly(d, f), f);
}

// 2^y for y in [-126, 127] (not checked: the caller clamps); relative error about 1.5e-7. (Not
// named Exp2: newer Highway has an hn::Exp2 that argument-dependent lookup would also find.)
template <class D, class V = hn::Vec<D>>
HWY_INLINE V Exp2InRange(D d, V y) {
  V s, fP;
  Exp2Parts(d, y, s, fP);
  return hn::MulAdd(s, fP, s);
}

// 2^y and 2^y - 1 for y in [-126, 127] (not checked: the caller clamps), each with its own
// relative precision (about 1.5e-7): 2^y also when tiny, 2^y - 1 also near 0 (y = 0 gives exactly
// 0), where 1 + (2^y - 1) or 2^y - 1 computed from the other would cancel. 2^q (1 + f P) - 1 =
// 2^q f P + (2^q - 1), where 2^q - 1 is exact for q in [-24, 24] (below, it rounds to -1, an
// error under 2^-25 where the result is near -1).
template <class D, class V = hn::Vec<D>>
HWY_INLINE void Exp2AndExp2m1(D d, V y, V& exp2, V& exp2m1) {
  V s, fP;
  Exp2Parts(d, y, s, fP);
  exp2 = hn::MulAdd(s, fP, s);
  exp2m1 = hn::MulAdd(s, fP, hn::Sub(s, hn::Set(d, 1.0f)));
}

}  // namespace gemmacpp::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
