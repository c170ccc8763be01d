"""Row LSTM (paper section 3.1) and Diagonal BiLSTM (section 3.2), written from the paper.

Both: 7x7 mask-A input convolution -> `layers` residual LSTM layers -> two ReLU + 1x1 mask-B output
layers -> sigmoid / 256-way softmax. An LSTM layer takes `features` channels, keeps `hidden` (h)
state features per direction, and a 1x1 mask-B convolution maps h back to `features` before the
layer input is added (`residual_conv`; without it h must equal `features` and the LSTM output is
added directly).

Gates: the 4h pre-activations are, in this order, o, f, i (sigmoid) and g (tanh);
c = f*c_prev + i*g, h = o*tanh(c). The input-to-state maps are masked (mask B) with colour groups
per gate: pre-activation k has the group of hidden feature k mod h. State-to-state convolutions
are unmasked: they only read states of earlier positions.

Conditioning (the multi-scale PixelRNN, paper section 3.6, `multiscale.py`): with config
`conditioning` = c > 0, every LSTM direction of every layer has a 1x1 unmasked convolution
`conditioning` (4h, c, 1, 1), no bias, that maps a conditioning map (b, c, H, W) to 4h x H x W,
added to its input-to-state map.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import MaskedConv2d, encode_input, reshape_logits
from .pixelcnn import OutputStack

GATES = 4


def lstm_update(a, c_prev, h):
    """Pre-activations a (..., 4h, n) in gate order o, f, i, g -> new (h, c), each (..., h, n).

    Under bf16 autocast the pre-activations come out of a matmul in bf16: the gates and the states
    carried from step to step are kept in float32 (no-op in float32 and float64)."""
    a = a.to(torch.promote_types(a.dtype, torch.float32))
    o = torch.sigmoid(a[..., 0:h, :])
    f = torch.sigmoid(a[..., h : 2 * h, :])
    i = torch.sigmoid(a[..., 2 * h : 3 * h, :])
    g = torch.tanh(a[..., 3 * h : 4 * h, :])
    c = f * c_prev + i * g
    return o * torch.tanh(c), c


def taps(x, k, offset):
    """x (..., h, n) -> (..., k*h, n): tap j holds x shifted so position p reads p + j + offset
    (zeros outside). One matrix product with a (4h, k*h) weight then is the 1-D convolution;
    on the CPU it is several times faster than conv1d at these sizes."""
    n = x.shape[-1]
    pad = F.pad(x, (-offset if offset < 0 else 0, k - 1 + offset if k - 1 + offset > 0 else 0))
    start = 0 if offset < 0 else offset
    return torch.cat([pad[..., start + j : start + j + n] for j in range(k)], dim=-2)


def flat_kernel(w):
    """(4h, h, k) -> (4h, k*h), matching the tap order of `taps`."""
    return w.permute(0, 2, 1).reshape(w.shape[0], -1)


def conditioning_conv(c, h):
    """The 1x1 unmasked map of a c-feature conditioning map to the 4h pre-activations (or None)."""
    return nn.Conv2d(c, GATES * h, 1, bias=False) if c else None


def init_input_to_state(conv, h):
    with torch.no_grad():
        conv.bias.zero_()
        conv.bias[h : 2 * h] = 1.0  # forget gate open at the start of training


def skew(z):
    """(b, c, H, W) -> (b, c, H, W+H-1): row r moves right by r (each column is a diagonal)."""
    b, c, H, W = z.shape
    flat = F.pad(z, (0, H)).reshape(b, c, H * (W + H))
    return flat[:, :, : H * (W + H - 1)].reshape(b, c, H, W + H - 1)


def unskew(s, W):
    """Inverse of skew: (b, c, H, W+H-1) -> (b, c, H, W)."""
    b, c, H, S = s.shape
    flat = F.pad(s.reshape(b, c, H * S), (0, H))
    return flat.reshape(b, c, H, S + 1)[:, :, :, :W]


def shift_down(x):
    """Row r takes row r-1; row 0 becomes zeros; the last row is dropped."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1, :]


def zero_residual(layer):
    """A recurrent layer passes its input through (growing): its residual 1x1 convolution zeroed.
    Without that convolution the LSTM's output is added as it is, and cannot be zeroed."""
    if layer.residual is None:
        raise ValueError("a layer without its residual convolution (residual_conv = false) cannot "
                         "start as the identity")
    nn.init.zeros_(layer.residual.weight)
    nn.init.zeros_(layer.residual.bias)


class RowLSTMLayer(nn.Module):
    def __init__(self, features, h, colours, is_kernel, ss_kernel, residual_conv=True, conditioning=0):
        super().__init__()
        self.h = h
        self.conditioning = conditioning_conv(conditioning, h)
        self.input_to_state = MaskedConv2d("B", features, GATES * h, (1, is_kernel), colours, gates=GATES)
        init_input_to_state(self.input_to_state, h)
        # (4h, h, 1, k): a k-wide kernel along the previous row's hidden state; no bias.
        self.state_to_state = nn.Parameter(torch.empty(GATES * h, h, 1, ss_kernel))
        nn.init.uniform_(self.state_to_state, -(h * ss_kernel) ** -0.5, (h * ss_kernel) ** -0.5)
        self.residual = MaskedConv2d("B", h, features, (1, 1), colours) if residual_conv else None

    def forward(self, x, cond=None):
        b, _, H, W = x.shape
        h = self.h
        z = self.input_to_state(x)  # (b, 4h, H, W), all rows at once
        if self.conditioning is not None:
            z = z + self.conditioning(cond)
        k = self.state_to_state.shape[-1]
        w_ss = flat_kernel(self.state_to_state[:, :, 0, :])  # (4h, k*h)
        h_prev = z.new_zeros(b, h, W)
        c_prev = z.new_zeros(b, h, W)
        rows = []
        # unbind once: indexing z[:, :, r] per step would make autograd fill a full-size zero
        # gradient for every row (most of the backward time)
        for z_row in z.unbind(2):
            a = z_row + torch.matmul(w_ss, taps(h_prev, k, -(k // 2)))
            h_prev, c_prev = lstm_update(a, c_prev, h)
            rows.append(h_prev)
        out = torch.stack(rows, dim=2)  # (b, h, H, W)
        return x + (self.residual(out) if self.residual is not None else out)

    def start_as_identity(self):
        zero_residual(self)


class DiagonalLSTM(nn.Module):
    """The parameters of one direction of the Diagonal LSTM."""

    def __init__(self, features, h, colours, state_bias, conditioning=0):
        super().__init__()
        self.h = h
        self.conditioning = conditioning_conv(conditioning, h)
        self.input_to_state = MaskedConv2d("B", features, GATES * h, (1, 1), colours, gates=GATES)
        init_input_to_state(self.input_to_state, h)
        # (4h, h, 2, 1): the previous diagonal's state at rows r-1 (tap 0) and r (tap 1) of the
        # skewed map = the pixel above and the pixel to the left in the image.
        self.state_to_state = nn.Parameter(torch.empty(GATES * h, h, 2, 1))
        nn.init.uniform_(self.state_to_state, -(2 * h) ** -0.5, (2 * h) ** -0.5)
        self.state_bias = nn.Parameter(torch.zeros(1)) if state_bias == "scalar" else None

    def pre_activations(self, x, cond):
        z = self.input_to_state(x)
        return z if self.conditioning is None else z + self.conditioning(cond)


def diagonal_scan(z, directions):
    """Scan input-to-state maps z (D, b, 4h, H, W) of D directions (each already in its own
    left-to-right orientation) with their state-to-state kernels -> hidden states (D, b, h, H, W).
    All directions advance together, one diagonal (skewed column) per step."""
    D, b, _, H, W = z.shape
    h = directions[0].h
    s = skew(z.reshape(D * b, -1, H, W)).reshape(D, b, GATES * h, H, -1)
    w_ss = torch.stack([flat_kernel(d.state_to_state[:, :, :, 0]) for d in directions])[:, None]  # (D,1,4h,2h)
    bias = None
    if directions[0].state_bias is not None:
        bias = torch.stack([d.state_bias for d in directions]).reshape(D, 1, 1, 1)
    h_prev = z.new_zeros(D, b, h, H)
    c_prev = z.new_zeros(D, b, h, H)
    cols = []
    for s_col in s.unbind(4):  # see RowLSTMLayer.forward on unbind
        a = s_col + torch.matmul(w_ss, taps(h_prev, 2, -1))
        if bias is not None:
            a = a + bias
        h_prev, c_prev = lstm_update(a, c_prev, h)
        cols.append(h_prev)
    out = torch.stack(cols, dim=4)
    return unskew(out.reshape(D * b, h, H, -1), W).reshape(D, b, h, H, W)


class DiagonalBiLSTMLayer(nn.Module):
    def __init__(self, features, h, colours, state_bias, residual_conv, conditioning=0):
        super().__init__()
        self.left_to_right = DiagonalLSTM(features, h, colours, state_bias, conditioning)
        self.right_to_left = DiagonalLSTM(features, h, colours, state_bias, conditioning)
        self.residual = MaskedConv2d("B", h, features, (1, 1), colours) if residual_conv else None

    def forward(self, x, cond=None):
        # The right-to-left direction runs on the width-mirrored map, and is mirrored back.
        z = torch.stack([self.left_to_right.pre_activations(x, cond),
                         self.right_to_left.pre_activations(x, cond).flip(3)])
        l2r, r2l = diagonal_scan(z, [self.left_to_right, self.right_to_left]).unbind(0)
        # The right-to-left direction at (r, c) has seen (r, c' > c): shifted down a row, every
        # position only reads rows above it from that direction.
        out = l2r + shift_down(r2l.flip(3))
        return x + (self.residual(out) if self.residual is not None else out)

    def start_as_identity(self):
        zero_residual(self)


class RecurrentPixelModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        c, feats, h = cfg["channels"], cfg["features"], cfg["hidden"]
        residual_conv = cfg.get("residual_conv", True)
        if not residual_conv and h != feats:
            raise ValueError("residual_conv = false needs hidden == features")
        k = cfg["input_kernel"]
        cond = cfg.get("conditioning", 0)
        self.input_conv = MaskedConv2d("A", c, feats, (k, k), c)
        if cfg["architecture"] == "row-lstm":
            layers = [RowLSTMLayer(feats, h, c, cfg["input_to_state_kernel"], cfg["state_to_state_kernel"],
                                   residual_conv, cond)
                      for _ in range(cfg["layers"])]
        else:
            layers = [DiagonalBiLSTMLayer(feats, h, c, cfg.get("state_bias", "none"), residual_conv, cond)
                      for _ in range(cfg["layers"])]
        self.layers = nn.ModuleList(layers)
        self.output_projection = (MaskedConv2d("B", feats, feats, (1, 1), c)
                                  if cfg.get("output_projection", False) else None)
        self.output = OutputStack(feats, cfg["output_features"], c, cfg["head"])

    def forward(self, x, cond=None):
        """x (b, c, H, W) pixel values -> logits (b, c, levels, H, W); `cond` (b, conditioning, H, W)
        when the config has `conditioning`."""
        cfg = self.cfg
        if (cond is None) != (not cfg.get("conditioning", 0)):
            raise ValueError("a conditioning map is needed exactly when the config has `conditioning`")
        dtype = self.input_conv.weight.dtype
        if cfg.get("input_encoding", "centred") == "unit":
            y = x.to(dtype) if cfg["head"] == "bernoulli" else x.to(dtype) / 255.0
        else:
            y = encode_input(x, cfg["head"], dtype)
        y = self.input_conv(y)
        for layer in self.layers:
            y = layer(y, cond)
        if self.output_projection is not None:
            y = self.output_projection(y)
        return reshape_logits(self.output(y), cfg["channels"], cfg["head"])
