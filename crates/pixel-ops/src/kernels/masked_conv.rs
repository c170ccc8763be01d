//! The CPU kernel of a masked convolution's whole-image pass ([`crate::conv::MaskedConv2d`],
//! paper §3.4): the open taps' inputs laid out a chunk of image rows at a time and multiplied by
//! `gemm` straight into their place in the output, with the bias, a residual and the ReLUs folded
//! in. The generic path is the layer's tensor operations
//! ([`crate::conv::MaskedConv2d::forward_channels_last`] off the CPU); the test below holds the
//! two equal.

use std::ops::Range;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor, WithDType};

use super::contiguous;

/// What a layer's whole-image pass folds in besides the product
/// ([`crate::conv::MaskedConv2d::forward_fused`]; the kernel folds it into its products, the generic
/// path applies it after).
#[derive(Debug, Clone, Copy, Default)]
pub struct Fused<'a> {
    /// ReLU on the input first.
    pub relu_input: bool,
    /// A map `(b, H, W, out)` added to the output (a residual connection).
    pub residual: Option<&'a Tensor>,
    /// ReLU on the output last (after the residual).
    pub relu_output: bool,
}

impl Fused<'_> {
    /// `y` through ReLU if [`Fused::relu_output`] asks for it.
    pub(crate) fn relu_output_if_asked(&self, y: Result<Tensor>) -> Result<Tensor> {
        if self.relu_output {
            y?.relu()
        } else {
            y
        }
    }
}

/// A layer's weights for the CPU kernel [`HostPass`]: one matrix per output block, row-major
/// `(1 + inputs, len)`, whose first row is the bias (it multiplies a column of ones laid before the
/// inputs), so that each block is one product written straight into its place in the output.
/// A 1×1 layer that reads its input as it is multiplies the input itself, without the ones: its
/// outputs start from `bias` and the products use the rows after the first.
#[derive(Debug, Clone)]
pub(crate) struct HostLayer {
    /// The open taps, `(dy, dx)`; `[(0, 0)]` for a 1×1 layer.
    taps: Vec<(isize, isize)>,
    /// The same taps in runs along kernel rows.
    tap_runs: Vec<TapRun>,
    outputs: usize,
    blocks: Vec<HostBlock>,
    /// `(outputs,)`.
    bias: HostMatrix,
}

/// Open taps `tap..tap + len` (in kernel order): `(dy, dx)`, `(dy, dx + 1)`, … of one kernel row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TapRun {
    tap: usize,
    dy: isize,
    dx: isize,
    len: usize,
}

impl TapRun {
    /// The runs of `taps`, in order.
    fn of(taps: &[(isize, isize)]) -> Vec<Self> {
        let mut runs: Vec<Self> = Vec::new();
        for (tap, &(dy, dx)) in taps.iter().enumerate() {
            match runs.last_mut() {
                Some(run) if run.dy == dy && run.dx + run.len as isize == dx && run.tap + run.len == tap => {
                    run.len += 1
                }
                _ => runs.push(Self { tap, dy, dx, len: 1 }),
            }
        }
        runs
    }
}

/// Outputs `start..start + len`, from the first `inputs` columns after the ones.
#[derive(Debug, Clone)]
struct HostBlock {
    inputs: usize,
    start: usize,
    len: usize,
    weight: HostMatrix,
}

#[derive(Debug, Clone)]
enum HostMatrix {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl HostLayer {
    /// From a layer's open taps, its `(taps·in, out)` tap matrix, `(1, out)` bias and the 1×1
    /// output blocks `(inputs, start, len)` (a k×k layer is one block of every input and output).
    /// `None` off the CPU, for other dtypes, and for a layer with no open tap.
    pub(crate) fn new(
        taps: &[(isize, isize)],
        tap_matrix: &Tensor,
        bias: Option<&Tensor>,
        runs: &[(usize, usize, usize)],
    ) -> Result<Option<Self>> {
        let dtype = tap_matrix.dtype();
        if !tap_matrix.device().is_cpu() || !matches!(dtype, DType::F32 | DType::F64) || taps.is_empty() {
            return Ok(None);
        }
        let (rows, outputs) = tap_matrix.dims2()?;
        let bias = match bias {
            Some(b) => b.clone(),
            None => Tensor::zeros((1, outputs), dtype, tap_matrix.device())?,
        };
        let host = |t: &Tensor| -> Result<HostMatrix> {
            Ok(match dtype {
                DType::F64 => HostMatrix::F64(t.flatten_all()?.to_vec1()?),
                _ => HostMatrix::F32(t.flatten_all()?.to_vec1()?),
            })
        };
        let single = [(rows, 0, outputs)];
        let runs = if taps == [(0, 0)] { runs } else { &single[..] };
        // The kernel writes each output through exactly one block: they must tile the outputs.
        let tiled = runs.iter().try_fold(0, |at, &(_, start, len)| (start == at).then_some(at + len));
        if tiled != Some(outputs) {
            candle_core::bail!("host kernel: output blocks {runs:?} do not tile the {outputs} outputs");
        }
        let blocks = runs
            .iter()
            .map(|&(inputs, start, len)| {
                let m = Tensor::cat(&[&bias, &tap_matrix.narrow(0, 0, inputs)?], 0)?.narrow(1, start, len)?;
                Ok(HostBlock { inputs, start, len, weight: host(&m)? })
            })
            .collect::<Result<_>>()?;
        Ok(Some(Self { taps: taps.to_vec(), tap_runs: TapRun::of(taps), outputs, blocks, bias: host(&bias)? }))
    }

    /// The whole-image pass, channels-last, with what `fused` folds in:
    /// `relu?(residual + layer(relu?(x)))`, `x` `(b, H, W, in)` → `(b, H, W, out)` (contiguous). A
    /// residual off the CPU or in another dtype is added after the kernel.
    pub(crate) fn forward_fused(&self, x: &Tensor, fused: Fused) -> Result<Tensor> {
        let pass = HostPass::new(self, fused.relu_input, fused.relu_output, false);
        let x = x.contiguous()?;
        match fused.residual {
            Some(r) if r.dtype() == x.dtype() && r.device().is_cpu() => x.apply_op2_no_bwd(&r.contiguous()?, &pass),
            Some(r) => fused.relu_output_if_asked(r + x.apply_op1_no_bwd(&HostPass { relu_output: false, ..pass })?),
            None => x.apply_op1_no_bwd(&pass),
        }
    }

    /// A 1×1 layer from a channels-last map to a channels-first one: `(b, H, W, in)` →
    /// `(b, out, H, W)`, written in that layout by the products; ReLU on the input first if
    /// `relu_input`.
    pub(crate) fn forward_1x1_to_channels_first(&self, x: &Tensor, relu_input: bool) -> Result<Tensor> {
        let (b, h, w, _) = x.dims4()?;
        let pass = HostPass::new(self, relu_input, false, true);
        x.contiguous()?.apply_op1_no_bwd(&pass)?.reshape((b, self.outputs, h, w))
    }
}

/// A float the host kernel runs in: its weights in a [`HostMatrix`].
trait HostFloat: WithDType + PartialOrd {
    fn weights(m: &HostMatrix) -> Option<&[Self]>;
}

impl HostFloat for f32 {
    fn weights(m: &HostMatrix) -> Option<&[f32]> {
        match m {
            HostMatrix::F32(v) => Some(v),
            HostMatrix::F64(_) => None,
        }
    }
}

impl HostFloat for f64 {
    fn weights(m: &HostMatrix) -> Option<&[f64]> {
        match m {
            HostMatrix::F64(v) => Some(v),
            HostMatrix::F32(_) => None,
        }
    }
}

/// `len` values of `base` from `start`, uninitialised.
///
/// # Safety
/// `base.add(start)..base.add(start + len)` lies inside one allocation, which nothing else
/// borrows while the view lives.
unsafe fn uninit<'a, T>(base: *mut T, start: usize, len: usize) -> &'a mut [std::mem::MaybeUninit<T>] {
    std::slice::from_raw_parts_mut(base.add(start).cast(), len)
}

/// Values in one chunk of the host kernel's left side (of each product's rows and columns): about
/// half a typical L2 cache in f32.
const HOST_CHUNK_VALUES: usize = 256 * 1024;

/// The CPU kernel of a layer's whole-image pass: `(b, H, W, in)` contiguous → `(b, H, W, out)`, or
/// `(b, out, H·W)` when `channels_first`; as a two-input op, the second input `(b, H, W, out)` is
/// added (a residual).
struct HostPass<'a> {
    layer: &'a HostLayer,
    relu_input: bool,
    /// ReLU on the output (after the residual); channels-last only.
    relu_output: bool,
    channels_first: bool,
    /// Values per chunk of the left side ([`HOST_CHUNK_VALUES`]); at least one image row.
    chunk_values: usize,
}

impl<'a> HostPass<'a> {
    fn new(layer: &'a HostLayer, relu_input: bool, relu_output: bool, channels_first: bool) -> Self {
        Self { layer, relu_input, relu_output, channels_first, chunk_values: HOST_CHUNK_VALUES }
    }

    /// Whether the products read the input itself rather than rows laid out from it: for a 1×1
    /// layer without ReLU on its input, when the outputs start from a residual or are no wider
    /// than the input `c` (then they are first set to the bias, which the ones column of the laid
    /// out rows would otherwise bring, at the cost of reading them back).
    fn reads_input_directly(&self, c: usize, residual: bool) -> bool {
        self.layer.taps == [(0, 0)] && !self.relu_input && (residual || self.layer.outputs <= c)
    }

    /// Fills `lhs` with the product's left side for image rows `rows`: per position a one, then
    /// the open taps' inputs side by side (zero outside the image), through ReLU if asked. The
    /// taps of one kernel row next to each other read neighbouring inputs, which lie side by side
    /// in the channels-last map as they do in `lhs`: away from the image's edges each such run of
    /// taps is one copy.
    fn fill_rows<T: HostFloat>(&self, x: &[T], (h, w, c): (usize, usize, usize), rows: Range<usize>, lhs: &mut [T]) {
        let k = 1 + self.layer.taps.len() * c;
        let first = rows.start;
        let copy = |d: &mut [T], s: &[T]| {
            if self.relu_input {
                d.iter_mut().zip(s).for_each(|(o, &v)| *o = if v < T::zero() { T::zero() } else { v });
            } else {
                d.copy_from_slice(s);
            }
        };
        for row in lhs.chunks_exact_mut(k) {
            row[0] = T::one();
        }
        for image_row in rows {
            let (n, y) = (image_row / h, image_row % h);
            let positions = &mut lhs[(image_row - first) * w * k..(image_row - first + 1) * w * k];
            for &TapRun { tap, dy, dx, len } in &self.layer.tap_runs {
                let columns = 1 + tap * c..1 + (tap + len) * c;
                let yy = y as isize + dy;
                if yy < 0 || yy >= h as isize {
                    positions.chunks_exact_mut(k).for_each(|p| p[columns.clone()].fill(T::zero()));
                    continue;
                }
                let source_row = &x[(n * h + yy as usize) * w * c..(n * h + yy as usize + 1) * w * c];
                for (col, p) in positions.chunks_exact_mut(k).enumerate() {
                    let start = col as isize + dx;
                    let d = &mut p[columns.clone()];
                    if start >= 0 && start + len as isize <= w as isize {
                        copy(d, &source_row[start as usize * c..(start as usize + len) * c]);
                        continue;
                    }
                    for (j, d) in d.chunks_exact_mut(c).enumerate() {
                        let xx = start + j as isize;
                        if xx < 0 || xx >= w as isize {
                            d.fill(T::zero());
                        } else {
                            copy(d, &source_row[xx as usize * c..(xx as usize + 1) * c]);
                        }
                    }
                }
            }
        }
    }

    /// The pass, a chunk of image rows at a time: each chunk's left side is laid out and
    /// multiplied while it is still in the cache (the whole image's would be `1 + taps·in` values
    /// per position, several times the output). Each output value is written once: by the
    /// products, or first the bias (or residual plus bias) that they add to; the output is not
    /// zeroed first.
    fn run<T: HostFloat>(&self, x: &[T], dims: (usize, usize, usize, usize), residual: Option<&[T]>) -> Result<Vec<T>> {
        let (b, h, w, c) = dims;
        let (hw, outputs) = (h * w, self.layer.outputs);
        let total = b * hw * outputs;
        let direct = self.reads_input_directly(c, residual.is_some());
        let Some(bias) = T::weights(&self.layer.bias) else {
            candle_core::bail!("host kernel: the weights' dtype is not the input's");
        };
        // Columns of the left side and its row stride: the input itself, or the laid-out rows.
        let k = if direct { c } else { 1 + self.layer.taps.len() * c };
        // With a residual, the output starts as a copy of it; otherwise it is allocated and left
        // uninitialised until the chunks below write it (its length is set at the end).
        let mut out: Vec<T> = match residual {
            Some(r) => r.to_vec(),
            None => Vec::with_capacity(total),
        };
        let base = out.as_mut_ptr();
        let threads = candle_core::utils::get_num_threads();
        let parallelism = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
        let chunk_rows = (self.chunk_values / (w * k)).clamp(1, h.max(1));
        let mut rows = vec![T::zero(); if direct { 0 } else { chunk_rows * w * k }];
        for n in 0..b {
            for y0 in (0..h).step_by(chunk_rows) {
                let y1 = (y0 + chunk_rows).min(h);
                let (first, m) = (n * hw + y0 * w, (y1 - y0) * w);
                let lhs = if direct {
                    &x[first * c..(first + m) * c]
                } else {
                    let rows = &mut rows[..m * k];
                    self.fill_rows(x, (h, w, c), n * h + y0..n * h + y1, rows);
                    &*rows
                };
                // Output o of the chunk's i-th position is at at + o·per_output + i·step.
                let (at, per_output, step) = match self.channels_first {
                    true => (n * outputs * hw + y0 * w, hw, 1),
                    false => (first * outputs, 1, outputs),
                };
                if direct {
                    // The products add to the bias (and the residual).
                    // SAFETY: the views lie inside `out`'s allocation of `total` values (the
                    // chunk's m positions of every output); values are only read where the
                    // residual initialised them.
                    unsafe {
                        match (self.channels_first, residual.is_some()) {
                            (false, false) => uninit(base, at, m * outputs)
                                .chunks_exact_mut(outputs)
                                .for_each(|o| o.iter_mut().zip(bias).for_each(|(v, &bo)| _ = v.write(bo))),
                            (false, true) => std::slice::from_raw_parts_mut(base.add(at), m * outputs)
                                .chunks_exact_mut(outputs)
                                .for_each(|o| o.iter_mut().zip(bias).for_each(|(v, &bo)| *v += bo)),
                            (true, false) => bias.iter().enumerate().for_each(|(o, &bo)| {
                                uninit(base, at + o * hw, m).iter_mut().for_each(|v| _ = v.write(bo))
                            }),
                            (true, true) => candle_core::bail!("host kernel: no residual for channels-first outputs"),
                        }
                    }
                }
                for block in &self.layer.blocks {
                    let Some(weight) = T::weights(&block.weight) else {
                        candle_core::bail!("host kernel: the weights' dtype is not the input's");
                    };
                    debug_assert_eq!(weight.len(), (1 + block.inputs) * block.len);
                    // Direct: the input's first `inputs` columns times the rows after the bias.
                    let (depth, rhs) =
                        if direct { (block.inputs, &weight[block.len..]) } else { (1 + block.inputs, weight) };
                    if depth == 0 {
                        continue;
                    }
                    // SAFETY: every index the product touches lies inside `out`'s allocation,
                    // `lhs` and `rhs`: dst (m × len) from at + start·per_output with the strides
                    // (step, per_output) holds outputs start..start + len of the chunk's m
                    // positions; lhs m rows of k columns, of which the first depth ≤ k are read;
                    // rhs depth × len, row-major. dst is read only if it was written (the bias
                    // or the residual); otherwise the product overwrites it.
                    unsafe {
                        gemm::gemm(
                            m,
                            block.len,
                            depth,
                            base.add(at + block.start * per_output),
                            per_output as isize,
                            step as isize,
                            direct || residual.is_some(),
                            lhs.as_ptr(),
                            1,
                            k as isize,
                            rhs.as_ptr(),
                            1,
                            block.len as isize,
                            T::one(),
                            T::one(),
                            false,
                            false,
                            false,
                            parallelism,
                        );
                    }
                }
                if self.relu_output {
                    debug_assert!(!self.channels_first);
                    // SAFETY: the chunk's m·outputs values from `at` were all written above.
                    let chunk = unsafe { std::slice::from_raw_parts_mut(base.add(at), m * outputs) };
                    for v in chunk {
                        *v = if *v < T::zero() { T::zero() } else { *v };
                    }
                }
            }
        }
        // SAFETY: every chunk wrote all of its outputs: the blocks cover outputs 0..outputs
        // (`HostLayer::new`), and a block that reads no input was given its bias above (direct)
        // or by the ones column.
        unsafe { out.set_len(total) };
        Ok(out)
    }

    fn output_shape(&self, (b, h, w, _): (usize, usize, usize, usize)) -> Shape {
        match self.channels_first {
            true => Shape::from((b, self.layer.outputs, h * w)),
            false => Shape::from((b, h, w, self.layer.outputs)),
        }
    }
}

impl CustomOp1 for HostPass<'_> {
    fn name(&self) -> &'static str {
        "masked-conv-host"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let dims = layout.shape().dims4()?;
        let name = CustomOp1::name(self);
        let (s, e) = contiguous(layout, name)?;
        let out = match storage {
            CpuStorage::F32(v) => CpuStorage::F32(self.run(&v[s..e], dims, None)?),
            CpuStorage::F64(v) => CpuStorage::F64(self.run(&v[s..e], dims, None)?),
            other => candle_core::bail!("{name}: unsupported dtype {:?}", other.dtype()),
        };
        Ok((out, self.output_shape(dims)))
    }
}

impl CustomOp2 for HostPass<'_> {
    fn name(&self) -> &'static str {
        "masked-conv-host-residual"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let dims = l1.shape().dims4()?;
        let shape = self.output_shape(dims);
        let name = CustomOp2::name(self);
        if self.channels_first || l2.shape() != &shape {
            candle_core::bail!("{name}: the residual is {:?}, the output {:?}", l2.shape(), shape);
        }
        let ((a, b), (c, d)) = (contiguous(l1, name)?, contiguous(l2, name)?);
        let out = match (s1, s2) {
            (CpuStorage::F32(x), CpuStorage::F32(r)) => CpuStorage::F32(self.run(&x[a..b], dims, Some(&r[c..d]))?),
            (CpuStorage::F64(x), CpuStorage::F64(r)) => CpuStorage::F64(self.run(&x[a..b], dims, Some(&r[c..d]))?),
            (x, r) => candle_core::bail!("{name}: unsupported dtypes {:?}, {:?}", x.dtype(), r.dtype()),
        };
        Ok((out, shape))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::tests::LAYER_SHAPES;
    use crate::conv::MaskedConv2d;
    use crate::kernels::max_diff;
    use candle_core::Device;

    /// The CPU kernel (ReLU, bias, residual and output blocks folded into the products) equals the
    /// tensor operations it replaces, for every kernel shape the models use, in f64 and f32, in
    /// both output layouts.
    #[test]
    fn the_host_kernel_equals_the_generic_pass() -> Result<()> {
        let dev = Device::Cpu;
        for dtype in [DType::F64, DType::F32] {
            let tolerance = if dtype == DType::F64 { 1e-12 } else { 1e-4 };
            for (mask, in_ch, out_ch, (kh, kw), gates) in LAYER_SHAPES {
                let weight = Tensor::randn(0f64, 1.0, (out_ch, in_ch, kh, kw), &dev)?.to_dtype(dtype)?;
                let bias = Tensor::randn(0f64, 1.0, out_ch, &dev)?.to_dtype(dtype)?;
                let conv = MaskedConv2d::new_gated(weight, Some(bias), mask, gates)?;
                let Some(host) = conv.host_layer() else { panic!("{mask:?} {kh}x{kw}: no host kernel") };
                let x = Tensor::randn(0f64, 1.0, (2, 6, 9, in_ch), &dev)?.to_dtype(dtype)?;
                let residual = Tensor::randn(0f64, 1.0, (2, 6, 9, out_ch), &dev)?.to_dtype(dtype)?;
                for (relu_input, residual, relu_output) in [
                    (false, None, false),
                    (true, None, false),
                    (true, Some(&residual), false),
                    (false, Some(&residual), false),
                    (true, None, true),
                    (false, None, true),
                    (false, Some(&residual), true),
                ] {
                    let fused = Fused { relu_input, residual, relu_output };
                    let got = conv.forward_fused(&x, fused)?;
                    let input = if relu_input { x.relu()? } else { x.clone() };
                    let mut want = conv.forward_channels_last_generic(&input)?;
                    if let Some(r) = residual {
                        want = (r + want)?;
                    }
                    if relu_output {
                        want = want.relu()?;
                    }
                    let case = format!("{dtype:?} {mask:?} {kh}x{kw} {fused:?}");
                    assert_eq!(got.dims(), want.dims(), "{case}");
                    assert!(max_diff(&got, &want)? < tolerance, "{case}");
                    // One image row per chunk gives the same.
                    let pass =
                        HostPass { layer: host, relu_input, relu_output, channels_first: false, chunk_values: 1 };
                    let rows = match residual {
                        Some(r) => x.apply_op2_no_bwd(r, &pass)?,
                        None => x.apply_op1_no_bwd(&pass)?,
                    };
                    assert!(max_diff(&rows, &want)? < tolerance, "{case}, a row per chunk");
                }
                if (kh, kw) == (1, 1) {
                    for relu_input in [false, true] {
                        let got = conv.forward_1x1_to_channels_first(&x, relu_input)?;
                        let input = if relu_input { x.relu()? } else { x.clone() };
                        let want = conv.forward_1x1_to_channels_first_generic(&input)?;
                        let case = format!("{dtype:?} {mask:?} channels-first, relu {relu_input}");
                        assert!(max_diff(&got, &want)? < tolerance, "{case}");
                    }
                }
            }
        }
        Ok(())
    }
}
