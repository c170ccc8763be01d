"""The discretized logistic mixture head (Salimans et al. 2017, "PixelCNN++", section 2.1-2.2),
written from the paper.

A network with this head outputs, per pixel, the parameters of K mixture components: a mixture
logit, and per colour channel a mean and a log scale; the means of the later channels are linear in
the earlier sub-pixels of the same pixel (x in [-1, 1]):

    mu_G = mu'_G + a * x_R,    mu_B = mu'_B + b * x_R + c * x_G,    a, b, c = tanh(raw coefficients)

Given the component the channels are independent discretized logistics. Value v in 0..255 has the
bin centre x = v / 127.5 - 1 and half width 1/255; its probability is

    sigmoid((x + 1/255 - mu) / s) - sigmoid((x - 1/255 - mu) / s),

except at the edges, where v = 0 takes all the mass below its upper edge and v = 255 all the mass
above its lower edge, so the 256 probabilities sum to 1 exactly.

The parameter layout, channels of the (b, P, h, w) output with P = K * (1 + 2C + C(C-1)/2):
[logits (K) | means (C blocks of K) | log scales (C blocks of K) | coefficients (C(C-1)/2 blocks
of K: a; then b, c)]. Log scales are clamped below at LOG_SCALE_MIN.
"""
import torch
import torch.nn.functional as F

HEAD = "logistic-mixture"
LOG_SCALE_MIN = -7.0
HALF_BIN = 1.0 / 255.0


def per_component(channels):
    """Parameters per component: the logit, C means, C log scales, C(C-1)/2 coefficients."""
    return 1 + 2 * channels + channels * (channels - 1) // 2


def param_count(components, channels):
    return components * per_component(channels)


def components_of(params, channels):
    """K from the number of parameter channels P."""
    k, rest = divmod(params, per_component(channels))
    if rest or not k:
        raise ValueError(f"{params} parameter channels are not a whole number of {channels}-channel components")
    return k


def split_params(p, components, channels):
    """(b, P, h, w) -> logits (b, K, h, w), means and log scales (b, C, K, h, w), coefficients
    (b, C(C-1)/2, K, h, w) (tanh applied)."""
    b, _, h, w = p.shape
    K, C = components, channels
    logits = p[:, :K]
    means = p[:, K : K + C * K].reshape(b, C, K, h, w)
    log_scales = p[:, K + C * K : K + 2 * C * K].reshape(b, C, K, h, w).clamp(min=LOG_SCALE_MIN)
    coeffs = torch.tanh(p[:, K + 2 * C * K :].reshape(b, C * (C - 1) // 2, K, h, w))
    return logits, means, log_scales, coeffs


def conditional_means(means, coeffs, x):
    """(b, C, K, h, w): each channel's means given the earlier sub-pixels x (b, C, h, w) in [-1, 1]."""
    C = means.shape[1]
    out, k = [means[:, 0]], 0
    for c in range(1, C):
        m = means[:, c]
        for e in range(c):
            m = m + coeffs[:, k] * x[:, e, None]
            k += 1
        out.append(m)
    return torch.stack(out, 1)


def softplus(z):
    """log(1 + e^z), exactly (torch's F.softplus returns z itself above its threshold of 20, off by
    up to 2e-9, which a float64 reference must not be)."""
    return z.clamp(min=0) + torch.log1p(torch.exp(-z.abs()))


def log_prob_bins(x, mu, log_s):
    """log P(bin with centre x) of logistics (mu, exp(log_s)); all three broadcast. Stable in f32:

        log(sigmoid(p) - sigmoid(m)) = log sigmoid(p) + log sigmoid(-m) + log(1 - exp(m - p)),

    with log sigmoid(z) = z - softplus(z), so neither a difference of two sigmoids near 1 nor a log
    of an underflowed difference is ever taken."""
    inv_s = torch.exp(-log_s)
    plus = inv_s * (x - mu + HALF_BIN)
    minus = inv_s * (x - mu - HALF_BIN)
    log_below_plus = plus - softplus(plus)  # v = 0: everything below the upper edge
    log_above_minus = -softplus(minus)  # v = 255: everything above the lower edge
    # plus - minus = (2/255) / s exactly: from the scale, not from two rounded values.
    log_mid = log_below_plus - softplus(minus) + torch.log(-torch.expm1(-2 * HALF_BIN * inv_s))
    return torch.where(x < -0.999, log_below_plus, torch.where(x > 0.999, log_above_minus, log_mid))


def centred(x_int, dtype):
    """Pixel values 0..255 -> [-1, 1] (the bin centres)."""
    return x_int.to(dtype) / 127.5 - 1.0


def log_likelihood(params, x_int, components):
    """log p(x) in nats per image of pixel values x_int (b, C, h, w) under the mixture params."""
    C = x_int.shape[1]
    x = centred(x_int, params.dtype)
    logits, means, log_scales, coeffs = split_params(params, components, C)
    mu = conditional_means(means, coeffs, x)
    per_component_lp = log_prob_bins(x[:, :, None], mu, log_scales).sum(1)  # (b, K, h, w)
    return torch.logsumexp(per_component_lp + F.log_softmax(logits, dim=1), dim=1).flatten(1).sum(1)


def channel_log_probs(params, x_int, components):
    """(b, C, 256, h, w): the log-probability of every value of each channel given the earlier
    sub-pixels of x_int (their true values): the mixture weights are the components' posterior
    given those sub-pixels. The form every other zoo head's logits take, so a sampler or a coder
    treats this head like a 256-way softmax."""
    C = x_int.shape[1]
    x = centred(x_int, params.dtype)
    logits, means, log_scales, coeffs = split_params(params, components, C)
    mu = conditional_means(means, coeffs, x)
    grid = torch.linspace(-1.0, 1.0, 256, dtype=params.dtype, device=params.device)[None, :, None, None, None]
    weight = F.log_softmax(logits, dim=1)  # (b, K, h, w): the components' posterior so far
    out = []
    for c in range(C):
        bins = log_prob_bins(grid, mu[:, c, None], log_scales[:, c, None])  # (b, 256, K, h, w)
        out.append(torch.logsumexp(bins + F.log_softmax(weight, dim=1)[:, None], dim=2))
        weight = weight + log_prob_bins(x[:, c, None], mu[:, c], log_scales[:, c])
    return torch.stack(out, 1)
