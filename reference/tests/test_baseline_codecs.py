import numpy as np

from pixelzoo_ref import baseline_codecs as B


def test_codecs_round_trip_and_noise_costs_more_than_flat():
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, size=(3, 3, 8, 8), dtype=np.uint8)
    flat = np.full((3, 3, 8, 8), 7, dtype=np.uint8)
    n, f = B.measure(noise), B.measure(flat)
    for codec in ("png", "webp"):
        # 8 bits of noise per value cannot be coded below ~8 bits/dim; a flat image codes far below.
        assert n[codec] > 7.5, (codec, n)
        assert f[codec] < n[codec] / 2, (codec, f, n)


def test_binary_images_are_coded_as_grey_0_255():
    x = np.zeros((1, 1, 4, 4), dtype=np.uint8)
    x[0, 0, 1, 2] = 1
    img = B.image_of(x[0])
    assert img.mode == "L" and np.asarray(img)[1, 2] == 255 and np.asarray(img).sum() == 255
    assert B.measure(x)["webp"] > 0
