//! Causal masks (paper §3.4): the one place where every mask is built.
//!
//! Features are split into as many groups as the image has colours (R, G, B or one grey group),
//! contiguously: feature `k` of `n` belongs to group `⌊k·colours/n⌋`. Spatially a mask opens the
//! taps above the centre row and the taps left of the centre in the centre row. At the centre tap,
//! output group `j` reads input group `i` iff `i < j` (mask A: a channel never sees itself) or
//! `i ≤ j` (mask B). With one colour, mask A closes the centre and mask B opens it.
//!
//! An LSTM input-to-state map has `gates` blocks of `h` outputs (o, f, i, g). Its output `k` takes
//! the group of hidden feature `k mod h`, so the four gates of one hidden feature see the same
//! colours as that feature ([`gated_colour_group`]).
//!
//! The Gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation with PixelCNN
//! Decoders", §2.2) splits the receptive field into two stacks. Its vertical stack reads whole rows:
//! [`MaskKind::VerticalA`] opens the rows above the centre row only (its first layer, on the
//! image), [`MaskKind::VerticalB`] also the whole centre row (the later layers, on vertical
//! features that themselves only know the rows above). Colours play no part there. Its horizontal
//! stack is a 1×k kernel under mask A or B.

/// Which centre-tap rule a mask uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskKind {
    /// First layer only: output group `j` reads input groups `i < j` at the centre.
    A,
    /// Every later layer: output group `j` reads input groups `i ≤ j` at the centre.
    B,
    /// The Gated PixelCNN's first vertical layer: the rows above the centre row, every tap of them.
    VerticalA,
    /// The Gated PixelCNN's later vertical layers (and its 1×1 vertical-to-horizontal link): the
    /// rows above and the whole centre row.
    VerticalB,
}

/// The colour group of feature `k` among `n` features split into `colours` groups.
pub fn colour_group(k: usize, n: usize, colours: usize) -> usize {
    k * colours / n
}

/// The colour group of output `k` of a map with `gates` blocks of `n / gates` outputs each: the
/// group of feature `k mod (n / gates)` among `n / gates`. With `gates = 1` it is [`colour_group`].
pub fn gated_colour_group(k: usize, n: usize, colours: usize, gates: usize) -> usize {
    let per_gate = n / gates;
    colour_group(k % per_gate, per_gate, colours)
}

/// The mask values, row-major over `(out_ch, in_ch, kh, kw)`, 1.0 where a tap is open.
pub fn mask_values(kind: MaskKind, out_ch: usize, in_ch: usize, kh: usize, kw: usize, colours: usize) -> Vec<f32> {
    gated_mask_values(kind, out_ch, in_ch, (kh, kw), colours, 1)
}

/// As [`mask_values`], the outputs grouped per gate ([`gated_colour_group`]).
pub fn gated_mask_values(
    kind: MaskKind,
    out_ch: usize,
    in_ch: usize,
    (kh, kw): (usize, usize),
    colours: usize,
    gates: usize,
) -> Vec<f32> {
    let (cy, cx) = (kh / 2, kw / 2);
    let mut m = vec![0f32; out_ch * in_ch * kh * kw];
    for o in 0..out_ch {
        let g_out = gated_colour_group(o, out_ch, colours, gates);
        for i in 0..in_ch {
            let g_in = colour_group(i, in_ch, colours);
            // The colour rule at the centre tap (the vertical masks have none: they open whole rows).
            let centre_open = match kind {
                MaskKind::A => g_in < g_out,
                MaskKind::B => g_in <= g_out,
                MaskKind::VerticalA | MaskKind::VerticalB => false,
            };
            for y in 0..kh {
                for x in 0..kw {
                    let open = match kind {
                        MaskKind::A | MaskKind::B => {
                            y < cy || (y == cy && x < cx) || (y == cy && x == cx && centre_open)
                        }
                        MaskKind::VerticalA => y < cy,
                        MaskKind::VerticalB => y <= cy,
                    };
                    if open {
                        m[((o * in_ch + i) * kh + y) * kw + x] = 1.0;
                    }
                }
            }
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spatial(kind: MaskKind, k: usize) -> Vec<f32> {
        mask_values(kind, 1, 1, k, k, 1)
    }

    /// A mask written row by row: `"111 100 000"` is the 3×3 mask A.
    fn drawn(rows: &str) -> Vec<f32> {
        rows.chars().filter(|c| !c.is_whitespace()).map(|c| if c == '1' { 1. } else { 0. }).collect()
    }

    #[test]
    fn grey_3x3_masks_by_hand() {
        assert_eq!(spatial(MaskKind::A, 3), drawn("111 100 000"));
        assert_eq!(spatial(MaskKind::B, 3), drawn("111 110 000"));
    }

    #[test]
    fn grey_1x1_mask_b_is_open_and_a_is_closed() {
        assert_eq!(spatial(MaskKind::B, 1), [1.]);
        assert_eq!(spatial(MaskKind::A, 1), [0.]);
    }

    #[test]
    fn rgb_centre_taps_by_hand() {
        // 1x1 kernels, 3 outputs x 3 inputs (one feature per colour): rows = output R, G, B.
        assert_eq!(mask_values(MaskKind::A, 3, 3, 1, 1, 3), drawn("000 100 110"));
        assert_eq!(mask_values(MaskKind::B, 3, 3, 1, 1, 3), drawn("100 110 111"));
    }

    #[test]
    fn rgb_groups_are_contiguous_blocks() {
        let groups: Vec<usize> = (0..8).map(|k| colour_group(k, 8, 3)).collect();
        assert_eq!(groups, [0, 0, 0, 1, 1, 1, 2, 2]);
        // 6 outputs (2 per colour) reading 3 inputs, mask A: centre-tap rows per output feature.
        let m = mask_values(MaskKind::A, 6, 3, 1, 1, 3);
        assert_eq!(&m[0..6], &[0., 0., 0., 0., 0., 0.]); // R features see nothing at the centre
        assert_eq!(&m[6..12], &[1., 0., 0., 1., 0., 0.]); // G features see R
        assert_eq!(&m[12..18], &[1., 1., 0., 1., 1., 0.]); // B features see R and G
    }

    #[test]
    fn gate_blocks_share_the_colour_groups_of_their_hidden_feature() {
        // h = 3 hidden features (R, G, B), 4 gates: outputs o0 o1 o2 f0 f1 f2 i0 i1 i2 g0 g1 g2.
        let groups: Vec<usize> = (0..12).map(|k| gated_colour_group(k, 12, 3, 4)).collect();
        assert_eq!(groups, [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2]);
        // Mask B, 1x1, 3 inputs (R, G, B): every gate row is the lower-triangular pattern.
        let m = gated_mask_values(MaskKind::B, 12, 3, (1, 1), 3, 4);
        for gate in 0..4 {
            assert_eq!(&m[gate * 9..gate * 9 + 9], drawn("100 110 111"), "gate {gate}");
        }
        // Contiguous grouping would have given the o gate only R: a different (wrong) mask.
        assert_ne!(m, mask_values(MaskKind::B, 12, 3, 1, 1, 3));
    }

    #[test]
    fn vertical_stack_masks_by_hand() {
        // 3x3: V-A opens the row above only; V-B the row above and the whole centre row.
        assert_eq!(spatial(MaskKind::VerticalA, 3), drawn("111 000 000"));
        assert_eq!(spatial(MaskKind::VerticalB, 3), drawn("111 111 000"));
        // Colours play no part: with 3 colours every output reads every input at every open tap.
        let rgb = mask_values(MaskKind::VerticalB, 6, 3, 3, 3, 3);
        for (o, chunk) in rgb.chunks(3 * 9).enumerate() {
            let per_input: Vec<&[f32]> = chunk.chunks(9).collect();
            assert!(per_input.iter().all(|m| *m == drawn("111 111 000")), "output {o}");
        }
        // A 1x1 V-B kernel (the vertical-to-horizontal link) is open; a 1x1 V-A kernel closed.
        assert_eq!(mask_values(MaskKind::VerticalB, 2, 2, 1, 1, 1), [1., 1., 1., 1.]);
        assert_eq!(spatial(MaskKind::VerticalA, 1), [0.]);
    }

    #[test]
    fn horizontal_stack_kernel_1_by_k_opens_the_left_taps_and_the_centre_by_colour() {
        // 1x3, 3 colours, mask A: every output reads the left tap of every input; at the centre
        // R reads nothing, G reads R, B reads R and G; the right tap is closed.
        let m = mask_values(MaskKind::A, 3, 3, 1, 3, 3);
        for o in 0..3 {
            for i in 0..3 {
                let taps = &m[(o * 3 + i) * 3..(o * 3 + i) * 3 + 3];
                assert_eq!(taps[0], 1.0, "left tap {o}<-{i}");
                assert_eq!(taps[1], if i < o { 1.0 } else { 0.0 }, "centre tap {o}<-{i}");
                assert_eq!(taps[2], 0.0, "right tap {o}<-{i}");
            }
        }
    }

    #[test]
    fn row_kernel_k_by_1_opens_only_the_left_taps() {
        // A 1x3 kernel along the row (Row LSTM input-to-state), grey, mask B: left, centre open.
        assert_eq!(mask_values(MaskKind::B, 1, 1, 1, 3, 1), [1., 1., 0.]);
        // A 3x1 column kernel: only the tap above and the centre.
        assert_eq!(mask_values(MaskKind::B, 1, 1, 3, 1, 1), [1., 1., 0.]);
    }
}
