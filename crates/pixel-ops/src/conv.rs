//! Masked convolutions (paper §3.4, §4): a 'same'-padded cross-correlation whose weight is the
//! checkpoint's weight times a causal mask. The mask is multiplied in once, at load time, so a
//! checkpoint that stores unmasked values still gives a causal network.
//!
//! A layer computes only its *open taps*: the kernel positions the mask leaves open (a 3×3 mask-B
//! kernel has 5 of 9, the 7×7 mask-A kernel 24 of 49). The whole-image pass works channels-last,
//! `(b, H, W, features)`: [`open_tap_columns`] lays the open taps' inputs side by side, one row per
//! position, and one matrix product with the open taps' weights gives every output. A 1×1 layer is
//! the matrix product alone.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Module, Result, Shape, Tensor, WithDType};
use candle_nn::VarBuilder;

use crate::mask::{gated_mask_values, MaskKind};

/// A convolution with an optional causal mask already applied to its weight.
#[derive(Debug, Clone)]
pub struct MaskedConv2d {
    /// `(out, in, kh, kw)`, masked.
    weight: Tensor,
    /// The weight as an `(in·kh·kw, out)` matrix and the bias as `(1, out)`: the layer at one
    /// position ([`MaskedConv2d::forward_at`]) is one matrix product.
    matrix: Tensor,
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
        Ok(Self { weight, matrix, row_bias, open_taps, tap_matrix, blocks, host })
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
            let pass = HostPass { layer: host, relu_input, channels_first: true };
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

    /// The whole-image pass, channels-last, with what `fused` folds in: `residual + layer(relu?(x))`.
    /// On the CPU one kernel ([`HostLayer`]): the input laid out once (ReLU on the way), the bias
    /// and the residual taken into the products, which write straight into the output.
    pub fn forward_fused(&self, x: &Tensor, fused: Fused) -> Result<Tensor> {
        if let Some(host) = self.host_for(x) {
            let pass = HostPass { layer: host, relu_input: fused.relu_input, channels_first: false };
            let x = x.contiguous()?;
            return match fused.residual {
                Some(r) if r.dtype() == x.dtype() && r.device().is_cpu() => x.apply_op2_no_bwd(&r.contiguous()?, &pass),
                Some(r) => r + x.apply_op1_no_bwd(&pass)?,
                None => x.apply_op1_no_bwd(&pass),
            };
        }
        let x = if fused.relu_input { x.relu()? } else { x.clone() };
        let y = self.forward_channels_last_generic(&x)?;
        match fused.residual {
            Some(r) => r + y,
            None => Ok(y),
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
        let y = window.reshape((b, ()))?.matmul(&self.matrix)?;
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

/// Calls `copy(position, tap, source)` for every position of `b` images of `h`×`w` (numbered
/// `(n·h + y)·w + x`) and every tap `(dy, dx)` of `taps` whose shifted input lies inside the image,
/// `source` being that input's position; the others stay zero (the 'same' padding).
fn for_each_tap_source(
    taps: &[(isize, isize)],
    (b, h, w): (usize, usize, usize),
    mut copy: impl FnMut(usize, usize, usize),
) {
    for n in 0..b {
        for y in 0..h {
            for (t, &(dy, dx)) in taps.iter().enumerate() {
                let yy = y as isize + dy;
                if yy < 0 || yy >= h as isize {
                    continue;
                }
                let src_row = (n * h + yy as usize) * w;
                // Output columns whose shifted input column lies inside the image.
                let first = (-dx).max(0) as usize;
                let end = (w as isize - dx).min(w as isize).max(0) as usize;
                for col in first..end {
                    copy((n * h + y) * w + col, t, (src_row as isize + col as isize + dx) as usize);
                }
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
        for_each_tap_source(&self.taps, (b, h, w), |at, k, src| {
            let dst = (at * t + k) * c;
            out[dst..dst + c].copy_from_slice(&x[src * c..(src + 1) * c]);
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
#[derive(Debug, Clone)]
struct HostLayer {
    /// The open taps, `(dy, dx)`; `[(0, 0)]` for a 1×1 layer.
    taps: Vec<(isize, isize)>,
    outputs: usize,
    blocks: Vec<HostBlock>,
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
        let single = [(rows, 0, outputs)];
        let runs = if taps == [(0, 0)] { runs } else { &single[..] };
        let blocks = runs
            .iter()
            .map(|&(inputs, start, len)| {
                let m = Tensor::cat(&[&bias, &tap_matrix.narrow(0, 0, inputs)?], 0)?.narrow(1, start, len)?;
                let weight = match dtype {
                    DType::F64 => HostMatrix::F64(m.flatten_all()?.to_vec1()?),
                    _ => HostMatrix::F32(m.flatten_all()?.to_vec1()?),
                };
                Ok(HostBlock { inputs, start, len, weight })
            })
            .collect::<Result<_>>()?;
        Ok(Some(Self { taps: taps.to_vec(), outputs, blocks }))
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

/// The CPU kernel of a layer's whole-image pass: `(b, H, W, in)` contiguous → `(b, H, W, out)`, or
/// `(b, out, H·W)` when `channels_first`; as a two-input op, the second input `(b, H, W, out)` is
/// added (a residual).
struct HostPass<'a> {
    layer: &'a HostLayer,
    relu_input: bool,
    channels_first: bool,
}

impl HostPass<'_> {
    /// Each position's row of the product's left side: a one, then the open taps' inputs
    /// side by side (zero outside the image), through ReLU if asked.
    fn rows<T: HostFloat>(&self, x: &[T], (b, h, w, c): (usize, usize, usize, usize)) -> (Vec<T>, usize) {
        let taps = &self.layer.taps;
        let k = 1 + taps.len() * c;
        let mut rows = vec![T::zero(); b * h * w * k];
        let act = |v: T| if self.relu_input && v < T::zero() { T::zero() } else { v };
        for row in rows.chunks_exact_mut(k) {
            row[0] = T::one();
        }
        for_each_tap_source(taps, (b, h, w), |at, t, src| {
            let dst = at * k + 1 + t * c;
            for (o, &v) in rows[dst..dst + c].iter_mut().zip(&x[src * c..(src + 1) * c]) {
                *o = act(v);
            }
        });
        (rows, k)
    }

    fn run<T: HostFloat>(&self, x: &[T], dims: (usize, usize, usize, usize), residual: Option<&[T]>) -> Result<Vec<T>> {
        let (b, h, w, _) = dims;
        let (hw, outputs) = (h * w, self.layer.outputs);
        let (rows, k) = self.rows(x, dims);
        let mut out = match residual {
            Some(r) => r.to_vec(),
            None => vec![T::zero(); b * hw * outputs],
        };
        let threads = candle_core::utils::get_num_threads();
        let parallelism = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
        for block in &self.layer.blocks {
            let Some(weight) = T::weights(&block.weight) else {
                candle_core::bail!("host kernel: the weights' dtype is not the input's");
            };
            debug_assert_eq!(weight.len(), (1 + block.inputs) * block.len);
            // (images, rows per product, destination offset per image and per output, row and
            // column strides)
            let (images, m, per_image, per_output, dst_rs, dst_cs) = if self.channels_first {
                (b, hw, outputs * hw, hw, 1, hw as isize)
            } else {
                (1, b * hw, 0, 1, outputs as isize, 1)
            };
            for n in 0..images {
                // SAFETY: every index the product touches lies inside `out`, `rows` and `weight`:
                // dst (m × len) from offset n·per_image + start·(hw or 1) with the strides above
                // stays in image n's block of outputs; lhs rows n·m..(n+1)·m of k columns, of
                // which the first 1 + inputs ≤ k are read; rhs (1 + inputs) × len, row-major.
                unsafe {
                    let dst_start = n * per_image + block.start * per_output;
                    gemm::gemm(
                        m,
                        block.len,
                        1 + block.inputs,
                        out.as_mut_ptr().add(dst_start),
                        dst_cs,
                        dst_rs,
                        residual.is_some(),
                        rows.as_ptr().add(n * m * k),
                        1,
                        k as isize,
                        weight.as_ptr(),
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
        }
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
                let x = Tensor::randn(0f64, 1.0, (2, 6, 5, in_ch), &dev)?.to_dtype(dtype)?;
                let residual = Tensor::randn(0f64, 1.0, (2, 6, 5, out_ch), &dev)?.to_dtype(dtype)?;
                for (relu_input, residual) in [(false, None), (true, None), (true, Some(&residual))] {
                    let got = conv.forward_fused(&x, Fused { relu_input, residual })?;
                    let input = if relu_input { x.relu()? } else { x.clone() };
                    let mut want = conv.forward_channels_last_generic(&input)?;
                    if let Some(r) = residual {
                        want = (r + want)?;
                    }
                    let case =
                        format!("{dtype:?} {mask:?} {kh}x{kw} relu {relu_input} residual {}", residual.is_some());
                    assert_eq!(got.dims(), want.dims(), "{case}");
                    assert!(max_diff(&got, &want)? < tolerance, "{case}");
                }
                if (kh, kw) == (1, 1) {
                    let got = conv.forward_1x1_to_channels_first(&x, true)?;
                    let want = conv.forward_1x1_to_channels_first_generic(&x.relu()?)?;
                    assert!(max_diff(&got, &want)? < tolerance, "{dtype:?} {mask:?} channels-first");
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
