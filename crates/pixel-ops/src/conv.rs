//! Masked convolutions (paper §3.4, §4): a 'same'-padded cross-correlation whose weight is the
//! checkpoint's weight times a causal mask. The mask is multiplied in once, at load time, so a
//! checkpoint that stores unmasked values still gives a causal network.
//!
//! A layer computes only its *open taps*: the kernel positions the mask leaves open (a 3×3 mask-B
//! kernel has 5 of 9, the 7×7 mask-A kernel 24 of 49). The whole-image pass works channels-last,
//! `(b, H, W, features)`: [`open_tap_columns`] lays the open taps' inputs side by side, one row per
//! position, and one matrix product with the open taps' weights gives every output. A 1×1 layer is
//! the matrix product alone.

use std::ops::Range;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Module, Result, Shape, Tensor, WithDType};
use candle_nn::VarBuilder;

use crate::mask::{gated_mask_values, MaskKind};
use crate::row_product::RowProduct;

/// A convolution with an optional causal mask already applied to its weight.
#[derive(Debug, Clone)]
pub struct MaskedConv2d {
    /// `(out, in, kh, kw)`, masked.
    weight: Tensor,
    /// The weight as an `(in·kh·kw, out)` matrix and the bias as `(1, out)`: the layer at one
    /// position ([`MaskedConv2d::forward_at`]) is one matrix product, row by row (the same bits for
    /// an image whatever the other images of the batch).
    matrix: RowProduct,
    row_bias: Option<Tensor>,
    /// The taps the mask leaves open, as `(dy, dx)` offsets from the centre, in kernel order.
    open_taps: Vec<(isize, isize)>,
    /// The open taps' weights as a `(taps·in, out)` matrix, tap-major (row `t·in + i` is input `i`
    /// at tap `t`): it multiplies [`open_tap_columns`].
    tap_matrix: Tensor,
    /// A 1×1 layer: its outputs in blocks that each read a prefix of the inputs (a colour mask's
    /// groups: outputs of colour j read input colours ≤ j), so each block is a smaller product.
    /// One block of every input and output when the mask has no such structure.
    blocks: Vec<OutputBlock>,
    /// The weights as host matrices for the CPU kernel ([`HostLayer`]); `None` off the CPU or
    /// for dtypes other than f32 and f64.
    host: Option<HostLayer>,
}

/// What a layer's whole-image pass folds in besides the product ([`MaskedConv2d::forward_fused`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Fused<'a> {
    /// ReLU on the input first.
    pub relu_input: bool,
    /// A map `(b, H, W, out)` added to the output (a residual connection).
    pub residual: Option<&'a Tensor>,
    /// ReLU on the output last (after the residual).
    pub relu_output: bool,
}

/// Outputs `start..start + len` of a 1×1 layer, which read inputs `0..inputs` only.
#[derive(Debug, Clone)]
struct OutputBlock {
    inputs: usize,
    start: usize,
    len: usize,
    /// `(inputs, len)` and its transpose `(len, inputs)`, contiguous.
    weight: Tensor,
    weight_t: Tensor,
}

/// The blocks of a 1×1 layer from its mask values `(out, in)`: runs of outputs that read the same
/// prefix of the inputs. `None` unless every output reads a prefix and there are at most `limit`
/// runs (more, smaller products would cost more than they save).
fn prefix_runs(values: &[f32], out_ch: usize, in_ch: usize, limit: usize) -> Option<Vec<(usize, usize, usize)>> {
    let mut runs: Vec<(usize, usize, usize)> = Vec::new(); // (inputs, start, len)
    for o in 0..out_ch {
        let row = &values[o * in_ch..(o + 1) * in_ch];
        let prefix = row.iter().take_while(|&&v| v != 0.0).count();
        if row[prefix..].iter().any(|&v| v != 0.0) {
            return None;
        }
        match runs.last_mut() {
            Some(run) if run.0 == prefix => run.2 += 1,
            _ => runs.push((prefix, o, 1)),
        }
    }
    (runs.len() <= limit).then_some(runs)
}

impl MaskedConv2d {
    /// A layer from tensors: `weight` `(out, in, kh, kw)` (odd kh and kw), `bias` `(out,)`.
    /// `mask`, if any, is `(kind, colours)`; it is multiplied into the weight here.
    pub fn new(weight: Tensor, bias: Option<Tensor>, mask: Option<(MaskKind, usize)>) -> Result<Self> {
        Self::new_gated(weight, bias, mask, 1)
    }

    /// As [`MaskedConv2d::new`] for a map of `gates` output blocks (an LSTM's input-to-state map,
    /// see [`crate::mask::gated_colour_group`]).
    pub fn new_gated(
        weight: Tensor,
        bias: Option<Tensor>,
        mask: Option<(MaskKind, usize)>,
        gates: usize,
    ) -> Result<Self> {
        let (out_ch, in_ch, kh, kw) = weight.dims4()?;
        if kh % 2 == 0 || kw % 2 == 0 {
            candle_core::bail!("masked convolution kernels must have odd sizes, got {kh}x{kw}");
        }
        if gates == 0 || !out_ch.is_multiple_of(gates) {
            candle_core::bail!("{out_ch} outputs cannot be split into {gates} gate blocks");
        }
        let everything = vec![(in_ch, 0, out_ch)];
        let (weight, open, runs) = match mask {
            Some((kind, colours)) => {
                let values = gated_mask_values(kind, out_ch, in_ch, (kh, kw), colours, gates);
                let per_tap = |tap: usize| (0..out_ch * in_ch).any(|oi| values[oi * kh * kw + tap] != 0.0);
                let open: Vec<usize> = (0..kh * kw).filter(|&tap| per_tap(tap)).collect();
                let runs = match (kh, kw) {
                    (1, 1) => prefix_runs(&values, out_ch, in_ch, colours).unwrap_or(everything),
                    _ => everything,
                };
                let m = Tensor::from_vec(values, (out_ch, in_ch, kh, kw), weight.device())?.to_dtype(weight.dtype())?;
                ((weight * m)?, open, runs)
            }
            None => (weight, (0..kh * kw).collect(), everything),
        };
        let matrix = weight.reshape((out_ch, in_ch * kh * kw))?.t()?.contiguous()?;
        let ids = Tensor::from_vec(open.iter().map(|&t| t as u32).collect::<Vec<_>>(), open.len(), weight.device())?;
        let tap_matrix = weight
            .permute((2, 3, 1, 0))?
            .reshape((kh * kw, in_ch, out_ch))?
            .index_select(&ids, 0)?
            .reshape((open.len() * in_ch, out_ch))?
            .contiguous()?;
        let open_taps: Vec<(isize, isize)> = open
            .iter()
            .map(|&t| ((t / kw) as isize - (kh / 2) as isize, (t % kw) as isize - (kw / 2) as isize))
            .collect();
        let row_bias = bias.as_ref().map(|b| b.reshape((1, out_ch))).transpose()?;
        let host = HostLayer::new(&open_taps, &tap_matrix, row_bias.as_ref(), &runs)?;
        let blocks = runs
            .into_iter()
            .filter(|&(inputs, _, _)| inputs > 0 || (kh, kw) != (1, 1))
            .map(|(inputs, start, len)| {
                let weight = matrix.narrow(0, 0, inputs)?.narrow(1, start, len)?.contiguous()?;
                Ok(OutputBlock { inputs, start, len, weight_t: weight.t()?.contiguous()?, weight })
            })
            .collect::<Result<_>>()?;
        Ok(Self { weight, matrix: RowProduct::new(&matrix)?, row_bias, open_taps, tap_matrix, blocks, host })
    }

    /// A 1×1 layer from a channels-last map to a channels-first one: `(b, H, W, in)` →
    /// `(b, out, H, W)`, contiguous, written in that layout by the matrix products themselves (no
    /// transpose); ReLU on the input first if `relu_input`. For the output stack's last layer,
    /// whose logits are wanted channels-first.
    pub fn forward_1x1_to_channels_first(&self, x: &Tensor, relu_input: bool) -> Result<Tensor> {
        if self.weight.dims()[2..] != [1, 1] {
            candle_core::bail!(
                "forward_1x1_to_channels_first is for 1x1 layers, this one is {:?}",
                &self.weight.dims()[2..]
            );
        }
        if let Some(host) = self.host_for(x) {
            let (b, h, w, _) = x.dims4()?;
            let pass = HostPass::new(host, relu_input, false, true);
            return x.contiguous()?.apply_op1_no_bwd(&pass)?.reshape((b, host.outputs, h, w));
        }
        let x = if relu_input { x.relu()? } else { x.clone() };
        self.forward_1x1_to_channels_first_generic(&x)
    }

    /// The host kernel's weights, if `x` can go through it (on the CPU, in the weights' dtype).
    fn host_for(&self, x: &Tensor) -> Option<&HostLayer> {
        self.host.as_ref().filter(|_| x.device().is_cpu() && x.dtype() == self.weight.dtype())
    }

    /// [`MaskedConv2d::forward_1x1_to_channels_first`] from tensor operations, for every device.
    fn forward_1x1_to_channels_first_generic(&self, x: &Tensor) -> Result<Tensor> {
        let (b, h, w, c) = x.dims4()?;
        let out = self.tap_matrix.dim(1)?;
        let rows = x.contiguous()?.reshape((b, h * w, c))?;
        let parts = self
            .blocks
            .iter()
            .map(|block| block.weight_t.broadcast_left(b)?.matmul(&rows.narrow(2, 0, block.inputs)?.transpose(1, 2)?))
            .collect::<Result<Vec<_>>>()?;
        let y = self.assemble(parts, 1, (b, out, h * w), x)?;
        let y = match &self.row_bias {
            Some(bias) => y.broadcast_add(&bias.reshape((1, out, 1))?)?,
            None => y,
        };
        y.reshape((b, out, h, w))
    }

    /// The blocks' outputs side by side along `dim`, zeros for outputs no block has (outputs that
    /// read nothing); `shape` is the whole output's.
    fn assemble(&self, parts: Vec<Tensor>, dim: usize, shape: impl Into<Shape>, like: &Tensor) -> Result<Tensor> {
        let shape: Shape = shape.into();
        let out = shape.dims()[dim];
        if parts.len() == 1 && self.blocks[0].len == out {
            return Ok(parts.into_iter().next().expect("one part"));
        }
        let mut pieces = Vec::with_capacity(2 * parts.len() + 1);
        let mut at = 0;
        let gap = |from: usize, to: usize| -> Result<Tensor> {
            let mut dims = shape.dims().to_vec();
            dims[dim] = to - from;
            Tensor::zeros(dims, like.dtype(), like.device())
        };
        for (block, part) in self.blocks.iter().zip(parts) {
            if block.start > at {
                pieces.push(gap(at, block.start)?);
            }
            pieces.push(part);
            at = block.start + block.len;
        }
        if at < out {
            pieces.push(gap(at, out)?);
        }
        Tensor::cat(&pieces, dim)
    }

    /// The whole-image pass, channels-last: `(b, H, W, in)` → `(b, H, W, out)` (contiguous).
    pub fn forward_channels_last(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_fused(x, Fused::default())
    }

    /// The whole-image pass, channels-last, with what `fused` folds in:
    /// `relu?(residual + layer(relu?(x)))`. On the CPU one kernel ([`HostLayer`]): the input laid
    /// out a chunk at a time (ReLU on the way) or, for a 1×1 layer without ReLU on its input,
    /// read as it is; the bias and the residual taken into the products, which write straight into
    /// the output; ReLU on the output while it is in the cache.
    pub fn forward_fused(&self, x: &Tensor, fused: Fused) -> Result<Tensor> {
        if let Some(host) = self.host_for(x) {
            let pass = HostPass::new(host, fused.relu_input, fused.relu_output, false);
            let x = x.contiguous()?;
            return match fused.residual {
                Some(r) if r.dtype() == x.dtype() && r.device().is_cpu() => x.apply_op2_no_bwd(&r.contiguous()?, &pass),
                Some(r) => {
                    let y = (r + x.apply_op1_no_bwd(&HostPass { relu_output: false, ..pass })?)?;
                    if fused.relu_output {
                        y.relu()
                    } else {
                        Ok(y)
                    }
                }
                None => x.apply_op1_no_bwd(&pass),
            };
        }
        let x = if fused.relu_input { x.relu()? } else { x.clone() };
        let y = self.forward_channels_last_generic(&x)?;
        let y = match fused.residual {
            Some(r) => (r + y)?,
            None => y,
        };
        if fused.relu_output {
            y.relu()
        } else {
            Ok(y)
        }
    }

    /// [`MaskedConv2d::forward_channels_last`] from tensor operations, for every device.
    fn forward_channels_last_generic(&self, x: &Tensor) -> Result<Tensor> {
        let (b, h, w, c) = x.dims4()?;
        let out = self.tap_matrix.dim(1)?;
        let y = if self.open_taps.is_empty() {
            Tensor::zeros((b * h * w, out), x.dtype(), x.device())?
        } else if self.open_taps == [(0, 0)] {
            let rows = x.contiguous()?.reshape((b * h * w, c))?;
            let parts = self
                .blocks
                .iter()
                .map(|block| rows.narrow(1, 0, block.inputs)?.matmul(&block.weight))
                .collect::<Result<Vec<_>>>()?;
            self.assemble(parts, 1, (b * h * w, out), x)?
        } else {
            open_tap_columns(x, &self.open_taps)?.reshape((b * h * w, ()))?.matmul(&self.tap_matrix)?
        };
        let y = match &self.row_bias {
            Some(bias) => y.broadcast_add(bias)?,
            None => y,
        };
        y.reshape((b, h, w, out))
    }

    /// The number of taps the mask leaves open (of kh·kw).
    pub fn open_tap_count(&self) -> usize {
        self.open_taps.len()
    }

    /// The layer at one position: `window` `(b, in, kh, kw)` is the input around it (zeros where
    /// the 'same' padding would be; `(b, in)` for a 1×1 layer) → `(b, out)`. Used by the cached
    /// samplers.
    pub fn forward_at(&self, window: &Tensor) -> Result<Tensor> {
        let b = window.dim(0)?;
        let y = self.matrix.forward(&window.reshape((b, ()))?)?;
        match &self.row_bias {
            Some(bias) => y.broadcast_add(bias),
            None => Ok(y),
        }
    }

    /// The masked weight, `(out, in, kh, kw)`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
}

impl Module for MaskedConv2d {
    /// `(b, in, h, w)` → `(b, out, h, w)`: [`MaskedConv2d::forward_channels_last`] between two
    /// transposes (the result is a transposed view).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_channels_last(&x.permute((0, 2, 3, 1))?)?.permute((0, 3, 1, 2))
    }
}

/// The inputs of the open taps side by side: `x` `(b, H, W, c)` → `(b, H, W, taps·c)`, where
/// columns `t·c..(t+1)·c` at `(y, x)` hold `x` at `(y + dy_t, x + dx_t)`, zero outside the image.
/// On the CPU one pass of copies; on other devices the same from padded, shifted views.
pub fn open_tap_columns(x: &Tensor, taps: &[(isize, isize)]) -> Result<Tensor> {
    if x.device().is_cpu() {
        return x.contiguous()?.apply_op1_no_bwd(&OpenTapColumns { taps: taps.to_vec() });
    }
    open_tap_columns_generic(x, taps)
}

/// [`open_tap_columns`] from tensor operations, for every device.
fn open_tap_columns_generic(x: &Tensor, taps: &[(isize, isize)]) -> Result<Tensor> {
    let (_, h, w, _) = x.dims4()?;
    let reach = |pick: fn(&(isize, isize)) -> isize| {
        let lo = taps.iter().map(pick).min().unwrap_or(0).min(0).unsigned_abs();
        let hi = taps.iter().map(pick).max().unwrap_or(0).max(0) as usize;
        (lo, hi)
    };
    let ((top, bottom), (left, right)) = (reach(|t| t.0), reach(|t| t.1));
    let padded = x.pad_with_zeros(1, top, bottom)?.pad_with_zeros(2, left, right)?;
    let shifted = taps
        .iter()
        .map(|&(dy, dx)| {
            padded.narrow(1, (top as isize + dy) as usize, h)?.narrow(2, (left as isize + dx) as usize, w)?.contiguous()
        })
        .collect::<Result<Vec<_>>>()?;
    Tensor::cat(&shifted, 3)
}

/// Calls `copy(position, tap, source, len)` for every tap `(dy, dx)` of `taps` and every run of
/// `len` positions of an image row of `b` images of `h`×`w` (positions numbered `(n·h + y)·w + x`)
/// whose shifted inputs lie inside the image: `source` is the position of the first one's input
/// (the run's are consecutive). The others are left alone (the 'same' padding: zeros).
fn for_each_tap_source(
    taps: &[(isize, isize)],
    (b, h, w): (usize, usize, usize),
    mut copy: impl FnMut(usize, usize, usize, usize),
) {
    for image_row in 0..b * h {
        let (n, y) = (image_row / h, image_row % h);
        for (t, &(dy, dx)) in taps.iter().enumerate() {
            let yy = y as isize + dy;
            // Output columns whose shifted input column lies inside the image.
            let first = ((-dx).max(0) as usize).min(w);
            let end = (w as isize - dx).clamp(first as isize, w as isize) as usize;
            if yy >= 0 && yy < h as isize && end > first {
                let src = (n * h + yy as usize) * w + (first as isize + dx) as usize;
                copy(image_row * w + first, t, src, end - first);
            }
        }
    }
}

/// The CPU kernel of [`open_tap_columns`].
struct OpenTapColumns {
    taps: Vec<(isize, isize)>,
}

impl OpenTapColumns {
    fn columns<T: WithDType>(&self, x: &[T], (b, h, w, c): (usize, usize, usize, usize)) -> Vec<T> {
        let t = self.taps.len();
        let mut out = vec![T::zero(); b * h * w * t * c];
        for_each_tap_source(&self.taps, (b, h, w), |at, k, src, len| {
            for i in 0..len {
                let dst = ((at + i) * t + k) * c;
                out[dst..dst + c].copy_from_slice(&x[(src + i) * c..(src + i + 1) * c]);
            }
        });
        out
    }
}

impl CustomOp1 for OpenTapColumns {
    fn name(&self) -> &'static str {
        "open-tap-columns"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let dims = layout.shape().dims4()?;
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("open-tap-columns needs a contiguous input");
        };
        let out = match storage {
            CpuStorage::F32(v) => CpuStorage::F32(self.columns(&v[start..end], dims)),
            CpuStorage::F64(v) => CpuStorage::F64(self.columns(&v[start..end], dims)),
            CpuStorage::BF16(v) => CpuStorage::BF16(self.columns(&v[start..end], dims)),
            CpuStorage::F16(v) => CpuStorage::F16(self.columns(&v[start..end], dims)),
            other => candle_core::bail!("open-tap-columns: unsupported dtype {:?}", other.dtype()),
        };
        let (b, h, w, c) = dims;
        Ok((out, Shape::from((b, h, w, self.taps.len() * c))))
    }
}

/// A layer's weights for the CPU kernel [`HostPass`]: one matrix per output block, row-major
/// `(1 + inputs, len)`, whose first row is the bias (it multiplies a column of ones laid before the
/// inputs), so that each block is one product written straight into its place in the output.
/// A 1×1 layer that reads its input as it is multiplies the input itself, without the ones: its
/// outputs start from `bias` and the products use the rows after the first.
#[derive(Debug, Clone)]
struct HostLayer {
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
    fn new(
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

/// The contiguous slice of a CPU storage, or an error naming `op`.
fn contiguous(layout: &Layout, op: &str) -> Result<(usize, usize)> {
    layout.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg(format!("{op} needs a contiguous input")))
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

/// Fetches `weight` `(out, in, kh, kw)` and `bias` `(out,)` under `vb` and masks the weight.
pub fn masked_conv2d(
    kind: MaskKind,
    in_ch: usize,
    out_ch: usize,
    kernel: (usize, usize),
    colours: usize,
    vb: VarBuilder,
) -> Result<MaskedConv2d> {
    let weight = vb.get((out_ch, in_ch, kernel.0, kernel.1), "weight")?;
    let bias = vb.get(out_ch, "bias")?;
    MaskedConv2d::new(weight, Some(bias), Some((kind, colours)))
}

/// As [`masked_conv2d`] for a map of `gates` output blocks of `out_ch / gates` features each.
pub fn gated_masked_conv2d(
    kind: MaskKind,
    in_ch: usize,
    out_ch: usize,
    kernel: (usize, usize),
    colours: usize,
    gates: usize,
    vb: VarBuilder,
) -> Result<MaskedConv2d> {
    let weight = vb.get((out_ch, in_ch, kernel.0, kernel.1), "weight")?;
    let bias = vb.get(out_ch, "bias")?;
    MaskedConv2d::new_gated(weight, Some(bias), Some((kind, colours)), gates)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, D};

    /// Every kind of layer the models use, and a few more: (mask, in, out, kernel, gates).
    #[allow(clippy::type_complexity)]
    const LAYER_SHAPES: [(Option<(MaskKind, usize)>, usize, usize, (usize, usize), usize); 10] = [
        (Some((MaskKind::A, 3)), 3, 12, (7, 7), 1),
        (Some((MaskKind::A, 1)), 1, 8, (7, 7), 1),
        (Some((MaskKind::B, 3)), 6, 6, (3, 3), 1),
        (Some((MaskKind::B, 1)), 4, 8, (1, 3), 4),
        (Some((MaskKind::B, 3)), 6, 12, (1, 1), 1),
        (Some((MaskKind::B, 3)), 7, 10, (1, 1), 1),
        (Some((MaskKind::A, 3)), 6, 9, (1, 1), 1),
        (Some((MaskKind::B, 3)), 6, 12, (1, 1), 4),
        (Some((MaskKind::B, 1)), 6, 5, (1, 1), 1),
        (None, 5, 4, (3, 3), 1),
    ];

    fn max_diff(a: &Tensor, b: &Tensor) -> Result<f64> {
        (a - b)?.abs()?.flatten_all()?.max(D::Minus1)?.to_dtype(DType::F64)?.to_scalar::<f64>()
    }

    #[test]
    fn the_cpu_columns_equal_the_generic_ones() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (2, 5, 6, 3), &dev)?;
        let taps = [(-3, -3), (-1, 2), (0, -1), (0, 0), (-2, 0), (0, 4)];
        let cpu = open_tap_columns(&x, &taps)?;
        assert_eq!(cpu.dims(), &[2, 5, 6, 18]);
        assert_eq!(max_diff(&cpu, &open_tap_columns_generic(&x, &taps)?)?, 0.0);
        Ok(())
    }

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
                assert!(conv.host.is_some(), "{mask:?} {kh}x{kw}: no host kernel");
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
                    let pass = HostPass {
                        layer: conv.host.as_ref().expect("host"),
                        relu_input,
                        relu_output,
                        channels_first: false,
                        chunk_values: 1,
                    };
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

    /// Every kernel shape the models use, masked and not, against candle's own convolution of the
    /// masked weight (which computes every tap).
    #[test]
    fn the_open_taps_give_the_full_convolution() -> Result<()> {
        let dev = Device::Cpu;
        for (mask, in_ch, out_ch, (kh, kw), gates) in LAYER_SHAPES {
            let weight = Tensor::randn(0f64, 1.0, (out_ch, in_ch, kh, kw), &dev)?;
            let bias = Tensor::randn(0f64, 1.0, out_ch, &dev)?;
            let conv = MaskedConv2d::new_gated(weight, Some(bias.clone()), mask, gates)?;
            let x = Tensor::randn(0f64, 1.0, (2, in_ch, 6, 5), &dev)?;
            let padded = x.pad_with_zeros(2, kh / 2, kh / 2)?.pad_with_zeros(3, kw / 2, kw / 2)?;
            let want = padded.conv2d(conv.weight(), 0, 1, 1, 1)?.broadcast_add(&bias.reshape((1, out_ch, 1, 1))?)?;
            let got = conv.forward(&x)?;
            assert!(max_diff(&got, &want)? < 1e-12, "{mask:?} {kh}x{kw}");
            if (kh, kw) == (1, 1) {
                let channels_first = conv.forward_1x1_to_channels_first(&x.permute((0, 2, 3, 1))?, false)?;
                assert!(max_diff(&channels_first, &want)? < 1e-12, "{mask:?} 1x1 to channels-first");
                let blocks = match (mask, gates) {
                    (Some((MaskKind::B, 3)), 1) => 3,
                    // Mask A: the red outputs read nothing (their bias alone).
                    (Some((MaskKind::A, 3)), 1) => 2,
                    _ => 1,
                };
                assert_eq!(conv.blocks.len(), blocks, "{mask:?} 1x1 output blocks");
            }
            let expected_open = match mask {
                Some((MaskKind::A, 1)) => kh / 2 * kw + kw / 2,
                Some(_) => kh / 2 * kw + kw / 2 + 1,
                None => kh * kw,
            };
            assert_eq!(conv.open_tap_count(), expected_open, "{mask:?} {kh}x{kw}");
        }
        Ok(())
    }
}
