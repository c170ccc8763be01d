"""The trend fit recovers a known power law and refuses what it cannot fit."""
import numpy as np

from pixelzoo_ref import trend


def test_recovers_a_known_power_law():
    images = np.linspace(100_000, 400_000, 12)
    values = 3.6 + 40.0 * images ** -0.5
    a, b, c, rms = trend.fit_power_law(images, values)
    assert abs(a - 3.6) < 0.01
    assert abs(c - 0.5) < 0.02
    assert rms < 1e-3
    needed = trend.images_to_reach((a, b, c, rms), 3.65)
    assert abs(needed - (40.0 / 0.05) ** 2) / (40.0 / 0.05) ** 2 < 0.05
    assert trend.images_to_reach((a, b, c, rms), 3.5) is None


def test_describe_reports_gain_and_projection():
    rows = [(n, 3.6 + 40.0 * n ** -0.5, n / 20.0) for n in np.linspace(50_000, 400_000, 15)]
    d = trend.describe("m-cifar10", rows, 0.4, target=3.65)
    assert d["points"] == sum(1 for r in rows if r[0] >= 0.4 * 400_000)
    slope = 0.5 * 40.0 * 400_000 ** -1.5 * 16000
    assert abs(d["gain_per_16k"] - slope) / slope < 0.05
    assert d["at_2x"] < d["at_1_5x"] < d["valid"]
    assert abs(d["images_per_s"] - 20.0) < 1e-6
    assert "reaches 3.65" in trend.format_line(d, "bits/dim")
    row = trend.format_row(d)
    header_columns = trend.MARKDOWN_HEADER.splitlines()[0].count("|")
    assert row.count("|") == header_columns
    assert "`m-cifar10`" in row and "at 20 img/s" in row
    assert "never" in trend.format_row(trend.describe("m-cifar10", rows, 0.4, target=3.5))


def test_too_few_points():
    assert trend.fit_power_law([1.0, 2.0], [3.0, 2.0]) is None
    d = trend.describe("m-mnist", [(1000.0, 90.0, 10.0), (2000.0, 89.0, 20.0)], 0.0)
    assert "too few" in trend.format_line(d, "nats/image")
    assert trend.format_row(d).count("|") == trend.MARKDOWN_HEADER.splitlines()[0].count("|")
