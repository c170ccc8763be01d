"""The discretized logistic mixture head (nets/logistic_mixture.py): the 256 bin probabilities of a
channel sum to 1, the chain of per-channel bins equals the joint likelihood, the stable f32 formula
agrees with a direct float64 computation, and extreme scales stay finite."""
import torch

from pixelzoo_ref.nets import logistic_mixture as LM

K, C = 5, 3


def params(seed=0, scale=2.0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, LM.param_count(K, C), 4, 4, generator=g, dtype=torch.float64).mul(scale).to(dtype)


def pixels(seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (2, C, 4, 4), generator=g)
    x[0, :, 0, 0] = 0  # the edge bins
    x[0, :, 0, 1] = 255
    return x


def direct(p, x):
    """log p(x) by the definition: sigmoid differences in float64, edges by their limits."""
    logits, means, log_scales, coeffs = LM.split_params(p.double(), K, C)
    xf = x.double() / 127.5 - 1
    mu = LM.conditional_means(means, coeffs, xf)
    s = log_scales.exp()
    xk = xf[:, :, None]
    up = torch.where(x[:, :, None] == 255, torch.ones((), dtype=torch.float64), torch.sigmoid((xk + 1 / 255 - mu) / s))
    lo = torch.where(x[:, :, None] == 0, torch.zeros(()), torch.sigmoid((xk - 1 / 255 - mu) / s))
    return (torch.softmax(logits, 1) * (up - lo).prod(1)).sum(1).log().flatten(1).sum(1)


def test_bins_sum_to_one_and_chain_to_the_joint():
    p, x = params(), pixels()
    logp = LM.channel_log_probs(p, x, K)  # (b, C, 256, h, w)
    assert torch.allclose(logp.exp().sum(2), torch.ones((), dtype=torch.float64), atol=1e-12)
    chained = logp.gather(2, x[:, :, None]).flatten(1).sum(1)
    assert torch.allclose(chained, LM.log_likelihood(p, x, K), atol=1e-9)


def test_the_stable_formula_matches_the_definition_in_float32():
    p, x = params(), pixels()
    ref = direct(p, x)
    assert torch.allclose(LM.log_likelihood(p, x, K), ref, atol=1e-9)
    assert torch.allclose(LM.log_likelihood(p.float(), x, K).double(), ref, rtol=1e-4)


def test_extreme_scales_stay_finite():
    x = pixels()
    for log_scale in (-20.0, 10.0):
        p = params(dtype=torch.float32)
        p[:, K + C * K : K + 2 * C * K] = log_scale
        assert torch.isfinite(LM.log_likelihood(p, x, K)).all()
        probs = LM.channel_log_probs(p.double(), x, K).exp()
        assert torch.allclose(probs.sum(2), torch.ones((), dtype=torch.float64), atol=1e-9)


def test_the_mixture_pixelcnn_is_causal_over_whole_pixels():
    """Each channel's 256 log-probabilities at pixel p depend on the pixels before p and on the
    earlier channels of p only (through the head), in float64 so an absent dependency is exactly 0."""
    from pixelzoo_ref.nets import build

    cfg = dict(architecture="mixture-pixelcnn", channels=3, height=5, width=5, head="logistic-mixture", hidden=16,
               layers=1, input_kernel=3, components=3)
    torch.manual_seed(0)
    model = build(cfg).double()
    C, H, W = 3, 5, 5
    n = C * H * W
    x = torch.randint(0, 256, (1, C, H, W))
    seen = torch.zeros(C, H, W, C, H, W, dtype=torch.bool)
    # The head reads the earlier channels' values, not a differentiable input: probe each input
    # value by changing it and looking at which log-probabilities move.
    base = LM.channel_log_probs(model(x), x, 3)
    for k in range(n):
        y = x.clone().view(-1)
        y[k] = (y[k] + 97) % 256
        y = y.view(1, C, H, W)
        moved = (LM.channel_log_probs(model(y), y, 3) - base).abs().amax(2)[0] > 0  # (C, H, W)
        seen.view(C, H, W, n)[..., k] = moved
    for c in range(C):
        for i in range(H):
            for j in range(W):
                for c2 in range(C):
                    for i2 in range(H):
                        for j2 in range(W):
                            ok = (i2, j2) < (i, j) or ((i2, j2) == (i, j) and c2 < c)
                            assert ok or not seen[c, i, j, c2, i2, j2], (c, i, j, c2, i2, j2)
    assert seen[2, 2, 2, 0, 2, 2] and seen[2, 2, 2, 1, 2, 2], "blue reads red and green of its pixel"
    assert seen[0, 2, 2, :, 1, 2].all(), "the pixel above is seen"
