/* round half to even for |v| < 2^22 (as cvtps2dq and nearbyintf do), without libm */
static float round_even(float v)
{
    return (v + 12582912.0f) - 12582912.0f;
}

/* QuantizeLinear to uint8 as MLAS computes it: v / scale, clamped to the zero-point-shifted range
 * (NaN -> the low end), rounded half to even, shifted by the zero point */
static int32_t quantize_u8(float v, float scale, int32_t zp)
{
    float f = v / scale, lo = (float)(0 - zp), hi = (float)(255 - zp);
    f = f > lo ? f : lo;
    f = f < hi ? f : hi;
    return (int32_t)round_even(f) + zp;
}

/* QGemm's int32 sum: acc[j] = b[j] + sum_k (x[k] - x_zp) w[k][j], exact, w as [n_pairs][2][n_out] (inputs
 * two by two, odd widths padded with x = x_zp, w = 0). With RANPD_INT8_AVX2_SATURATION it is taken as
 * onnxruntime's AVX2 u8s8 kernel takes it: vpmaddubsw adds the raw products of each pair saturated to
 * int16, and x_zp * sum_k w[k][j] (wsum) comes off at the end. */
static void qgemm(const int32_t *restrict x, int n_pairs, int32_t x_zp, const int8_t *restrict w,
                  const int32_t *restrict b, const int32_t *restrict wsum, int n_out, int32_t *restrict acc)
{
    for (int j = 0; j < n_out; ++j)
        acc[j] = b[j];
    for (int k = 0; k < n_pairs; ++k) {
        const int8_t *restrict w0 = w + 2 * k * n_out, *restrict w1 = w0 + n_out;
#ifdef RANPD_INT8_AVX2_SATURATION
        const int32_t x0 = x[2 * k], x1 = x[2 * k + 1];
        for (int j = 0; j < n_out; ++j) {
            int32_t p = x0 * w0[j] + x1 * w1[j];
            acc[j] += p > 32767 ? 32767 : (p < -32768 ? -32768 : p);
        }
#else
        const int32_t x0 = x[2 * k] - x_zp, x1 = x[2 * k + 1] - x_zp;
        for (int j = 0; j < n_out; ++j)
            acc[j] += x0 * w0[j] + x1 * w1[j];
#endif
    }
#ifdef RANPD_INT8_AVX2_SATURATION
    for (int j = 0; j < n_out; ++j)
        acc[j] -= x_zp * wsum[j];
#else
    (void)wsum;
#endif
}

/* QGemm's requantisation as MLAS does it: acc * multiplier in float, clamped to the zero-point-shifted
 * range, rounded half to even, shifted by the zero point */
static int32_t requantize_u8(int32_t acc, float mult, int32_t zp)
{
    float f = (float)acc * mult, lo = (float)(0 - zp), hi = (float)(255 - zp);
    f = f > lo ? f : lo;
    f = f < hi ? f : hi;
    return (int32_t)round_even(f) + zp;
}
