"""The causal masks (layers.build_mask) against hand-written matrices, as the Rust side checks
pixel-ops' mask module (crates/pixel-ops/src/mask.rs)."""
import torch

from pixelzoo_ref.nets.layers import MaskedConv2d, build_mask, colour_group, gate_colour_group


def spatial(kind, kh, kw):
    return build_mask(kind, 1, 1, kh, kw, colours=1)[0, 0].tolist()


def test_grey_3x3_masks_by_hand():
    assert spatial("A", 3, 3) == [[1, 1, 1],
                                  [1, 0, 0],
                                  [0, 0, 0]]
    assert spatial("B", 3, 3) == [[1, 1, 1],
                                  [1, 1, 0],
                                  [0, 0, 0]]


def test_grey_5x5_mask_a_by_hand():
    assert spatial("A", 5, 5) == [[1, 1, 1, 1, 1],
                                  [1, 1, 1, 1, 1],
                                  [1, 1, 0, 0, 0],
                                  [0, 0, 0, 0, 0],
                                  [0, 0, 0, 0, 0]]


def test_grey_1x1_mask_b_is_open_and_a_is_closed():
    assert spatial("B", 1, 1) == [[1]]
    assert spatial("A", 1, 1) == [[0]]


def test_rgb_centre_taps_by_hand():
    # 1x1 kernels, 3 outputs x 3 inputs (one feature per colour): rows = output R, G, B.
    a = build_mask("A", 3, 3, 1, 1, colours=3)[:, :, 0, 0].tolist()
    b = build_mask("B", 3, 3, 1, 1, colours=3)[:, :, 0, 0].tolist()
    assert a == [[0, 0, 0],
                 [1, 0, 0],
                 [1, 1, 0]]
    assert b == [[1, 0, 0],
                 [1, 1, 0],
                 [1, 1, 1]]


def test_rgb_3x3_mask_a_opens_every_colour_above_and_left():
    m = build_mask("A", 3, 3, 3, 3, colours=3)
    for o in range(3):
        for i in range(3):
            centre = 1 if i < o else 0
            assert m[o, i].tolist() == [[1, 1, 1],
                                        [1, centre, 0],
                                        [0, 0, 0]], (o, i)


def test_rgb_groups_are_contiguous_blocks():
    assert colour_group(8, 3).tolist() == [0, 0, 0, 1, 1, 1, 2, 2]
    # 6 outputs (2 per colour) reading 3 inputs, mask A: the centre-tap row of each output feature.
    m = build_mask("A", 6, 3, 1, 1, colours=3)[:, :, 0, 0].tolist()
    assert m == [[0, 0, 0], [0, 0, 0],   # R features see nothing at the centre
                 [1, 0, 0], [1, 0, 0],   # G features see R
                 [1, 1, 0], [1, 1, 0]]   # B features see R and G


def test_gate_blocks_share_the_colour_groups_of_their_hidden_feature():
    # h = 3 hidden features (R, G, B), 4 gates: outputs o0 o1 o2 f0 f1 f2 i0 i1 i2 g0 g1 g2.
    assert gate_colour_group(12, 4, 3).tolist() == [0, 1, 2] * 4
    m = build_mask("B", 12, 3, 1, 1, colours=3, gates=4)[:, :, 0, 0]
    for gate in range(4):
        assert m[3 * gate : 3 * gate + 3].tolist() == [[1, 0, 0],
                                                       [1, 1, 0],
                                                       [1, 1, 1]], gate
    # Contiguous grouping would have given the o gate only R: a different (wrong) mask.
    assert not torch.equal(m, build_mask("B", 12, 3, 1, 1, colours=3)[:, :, 0, 0])


def test_row_kernel_1xk_and_column_kernel_kx1():
    # A 1x3 kernel along the row (Row LSTM input-to-state), grey, mask B: left and centre open.
    assert spatial("B", 1, 3) == [[1, 1, 0]]
    # A 3x1 column kernel: only the tap above and the centre.
    assert spatial("B", 3, 1) == [[1], [1], [0]]


def test_masked_conv_applies_its_mask_in_forward():
    torch.manual_seed(0)
    conv = MaskedConv2d("A", 1, 1, (3, 3), colours=1)
    x = torch.zeros(1, 1, 3, 3)
    x[0, 0, 2, 2] = 1.0  # below-right of the centre: a closed tap for the centre output
    x[0, 0, 1, 1] = 1.0  # the centre itself: closed under mask A
    with torch.no_grad():
        assert conv(x)[0, 0, 1, 1].item() == conv.bias.item()
