//! Elementary functions written so that loops of them vectorise (no branches, no calls), for the
//! CPU kernels whose time would otherwise go to libm one value at a time: the LSTM cell's sigmoids
//! ([`crate::lstm`]), the softmax NLL's exponentials ([`crate::head`]) and the logistic mixture's
//! bins ([`crate::logistic_mixture`]). Each kernel that uses
//! them is also compiled for AVX2 and picks that build at run time ([`with_avx2`]); the operations
//! are the same, so the results are the same bits either way.

/// e^x in f32 without branches or calls, so that a loop of it vectorises: Cody–Waite reduction
/// x = n·ln 2 + r (n rounded to nearest with the 1.5·2^23 trick), Cephes' degree-6 polynomial for
/// e^r on |r| ≤ ln 2 / 2, and 2^n from its exponent bits. x is clamped to ±87 first, where e^x is
/// still a normal float (e^−87 ≈ 1.6e-38); NaN stays NaN. Within 1 ulp of e^x on the rest
/// (0.95 ulp at worst over 400,001 points of [−87, 87], against f64).
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 87.0);
    let t = x * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // t's low bits hold n (t lies in [2^23, 2^24), where the float step is 1).
    let n = t.to_bits() as i32 - ROUND.to_bits() as i32;
    y * f32::from_bits(((n + 127) << 23) as u32)
}

/// ln x in f32 without branches or calls, for positive normal x (what the kernels take the
/// logarithm of: sums of exponentials, 1 + e^−|z|): x = m·2^e with m in [√½, √2) from the bits,
/// ln m from Cephes' degree-9 polynomial in m − 1, and e·ln 2 added in two parts. Within 1 ulp of
/// ln x away from x = 1, and within 2^−24 absolutely near it (checked over [1e-30, 1e30]).
#[inline(always)]
pub fn ln_f32(x: f32) -> f32 {
    const SQRT_HALF: f32 = std::f32::consts::FRAC_1_SQRT_2;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let bits = x.to_bits();
    // m in [½, 1), x = m·2^e.
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000);
    let e = ((bits >> 23) & 0xff) as i32 - 126;
    // Below √½, take 2m and e − 1, so that m − 1 lies in [√½ − 1, √2 − 1).
    let low = m < SQRT_HALF;
    let f = if low { m + m - 1.0 } else { m - 1.0 };
    let e = (if low { e - 1 } else { e }) as f32;
    let z = f * f;
    let p = 7.037_683_6e-2f32;
    let p = p * f - 1.151_461e-1;
    let p = p * f + 1.167_699_9e-1;
    let p = p * f - 1.242_014_1e-1;
    let p = p * f + 1.424_932_3e-1;
    let p = p * f - 1.666_805_8e-1;
    let p = p * f + 2.000_071_5e-1;
    let p = p * f - 2.499_999_4e-1;
    let p = p * f + 3.333_333e-1;
    let y = p * f * z + e * LN2_LO - 0.5 * z;
    f + y + e * LN2_HI
}

/// The two halves of a log-sum-exp taken column by column over `rows` (row-major, each row as long
/// as `max`): each column's maximum into `max`, then Σ e^(v − max) over the column into `sum`, each
/// term from `exp_below_max(v, max)`. The log-sum-exp of column j is then ln sum[j] + max[j]. Written
/// a row at a time, so the loops run along the columns and vectorise.
#[inline(always)]
pub fn column_max_and_exp_sums<T: num_traits::Float, S: num_traits::Zero + Copy + std::ops::AddAssign>(
    rows: &[T],
    max: &mut [T],
    sum: &mut [S],
    exp_below_max: impl Fn(T, T) -> S,
) {
    let width = max.len();
    max.copy_from_slice(&rows[..width]);
    for row in rows.chunks_exact(width).skip(1) {
        for (m, &v) in max.iter_mut().zip(row) {
            *m = m.max(v);
        }
    }
    sum.fill(S::zero());
    for row in rows.chunks_exact(width) {
        for ((s, &v), &m) in sum.iter_mut().zip(row).zip(max.iter()) {
            *s += exp_below_max(v, m);
        }
    }
}

/// Runs `f` in a function compiled with AVX2 enabled when the CPU has it (so that the loops
/// inlined into it use 8-float vectors), otherwise as it is (the SSE2 baseline of x86-64, or
/// whatever the target has).
#[inline(always)]
pub fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        /// # Safety
        /// The CPU must have AVX2.
        #[target_feature(enable = "avx2")]
        unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2.
            return unsafe { avx2(f) };
        }
    }
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectorised exponential against f64's, across its whole range and at its edges.
    #[test]
    fn exp_f32_is_within_one_ulp() {
        let mut worst = 0f64;
        for k in 0..=400_000 {
            let x = -87.0 + 174.0 * k as f32 / 400_000.0;
            let (got, want) = (exp_f32(x) as f64, (x as f64).exp());
            let ulp = (want as f32).next_up() as f64 - want as f32 as f64;
            worst = worst.max((got - want).abs() / ulp);
        }
        assert!(worst <= 1.0, "worst error {worst} ulp");
        assert_eq!(exp_f32(0.0), 1.0);
        assert!(exp_f32(-1e4) > 0.0 && exp_f32(-1e4) < 2e-38, "clamped below: {}", exp_f32(-1e4));
        assert!(exp_f32(1e4).is_finite() && exp_f32(1e4) > 1e37);
        assert!(exp_f32(f32::NAN).is_nan());
    }

    /// The vectorised logarithm against f64's, over 60 decades and closely around 1, where its
    /// error is absolute (the result is near 0).
    #[test]
    fn ln_f32_is_within_one_ulp_or_two_to_the_minus_24() {
        let mut worst = 0f64;
        let points = (0..=600_000).map(|k| 10f32.powf(-30.0 + 60.0 * k as f32 / 600_000.0));
        let near_one = (0..=200_000).map(|k| 0.5 + 1.5 * k as f32 / 200_000.0);
        for x in points.chain(near_one) {
            let (got, want) = (ln_f32(x) as f64, (x as f64).ln());
            let ulp = ((want as f32).abs().next_up() as f64 - (want as f32).abs() as f64).max(2f64.powi(-24));
            worst = worst.max((got - want).abs() / ulp);
        }
        assert!(worst <= 1.0, "worst error {worst} ulp");
        assert_eq!(ln_f32(1.0), 0.0);
        assert!((ln_f32(2.0) - std::f32::consts::LN_2).abs() <= f32::EPSILON);
    }
}
