/* Elementary functions written so that loops over them vectorise: no calls, no branches,
 * no tables. glibc's expf is a call per element, so a softmax, a sigmoid or a loss over
 * logits ran one element at a time even in the AVX-512 clones of their loops. Not
 * installed.
 *
 * dg__expf(x) = e^x to within 1 ulp for every float whose result is a normal float (checked
 * against exp() in double over all of them: at most 0.98 ulp; glibc's expf is correctly
 * rounded but for a few cases); below that, where runs flush subnormals to zero anyway, it
 * gives 0 or a nearby subnormal; above ln(FLT_MAX), inf; NaN stays NaN.
 *   x = n ln2 + r, n = round(x / ln2), |r| <= ln2 / 2, with ln2 in two parts (the first
 *   with 9 significant bits, so n times it is exact for every n that occurs);
 *   e^r = 1 + r + r^2 q(r), q of degree 4 fitted here for least relative error on
 *   |r| <= 0.354 (3.5e-9, far below a float's rounding);
 *   2^n is two exponent-only factors 2^a 2^b, a + b = n, each a normal float for every
 *   clamped x, so e^r 2^a 2^b rounds once, at the end, and overflows or underflows there. */
#ifndef DG_VECTOR_MATH_H
#define DG_VECTOR_MATH_H

#include <stdint.h>
#include <string.h>

static inline float dg__expf(float x) {
    /* beyond these e^x is inf, or below the smallest subnormal (NaN fails the first test and
     * computes as -104; the result is NaN again at the end) */
    float xc = x > -104.0f ? x : -104.0f;
    xc = xc < 100.0f ? xc : 100.0f;
    const float round_shift = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    const float n = (xc * 1.44269504f + round_shift) - round_shift;
    const float r = (xc - n * 0.693359375f) - n * -2.12194440e-4f;
    float q = 0.00138116985f;
    q = q * r + 0.00837013515f;
    q = q * r + 0.0416685276f;
    q = q * r + 0.166665087f;
    q = q * r + 0.499999926f;
    const float er = 1.0f + (r + r * r * q);
    const int32_t ni = (int32_t)n, a = ni >> 1, b = ni - a; /* >> of a negative: arithmetic */
    const int32_t bits_a = (a + 127) * (1 << 23), bits_b = (b + 127) * (1 << 23);
    float two_a, two_b;
    memcpy(&two_a, &bits_a, sizeof two_a);
    memcpy(&two_b, &bits_b, sizeof two_b);
    const float y = er * two_a * two_b;
    return x == x ? y : x;
}

#endif
