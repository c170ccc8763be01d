"""Presets as train.py's command line takes them (`--preset NAME`), and the shipped-* presets against
weights-manifest.toml and the weights' metadata (what `python -m pixelzoo_ref.presets --check` prints)."""
import os

import pytest

from pixelzoo_ref import presets, train
from pixelzoo_ref.config import config_from
from pixelzoo_ref.data import SHAPES, family


def parse(*argv):
    return train.parse(["--out", os.devnull, *argv])


@pytest.mark.parametrize("name", presets.names())
def test_the_command_line_trains_the_preset(name):
    args = parse("--preset", name)
    assert args.dataset == presets.get(name)["dataset"]
    assert config_from(args, SHAPES[family(args.dataset)]) == presets.preset_config(name)


def test_a_size_flag_against_the_preset_is_refused(capsys):
    with pytest.raises(SystemExit):
        parse("--preset", "paper-pixelcnn-mnist", "--layers", "7")
    assert "--layers 7 (the preset has 15)" in capsys.readouterr().err
    # the preset's own value, or another data set of its family, is accepted
    args = parse("--preset", "paper-pixelcnn-mnist", "--layers", "15", "--dataset", "mnist-thresholded")
    assert (args.layers, args.dataset) == (15, "mnist-thresholded")
    with pytest.raises(SystemExit):
        parse("--preset", "paper-pixelcnn-mnist", "--dataset", "cifar10")


def test_the_shipped_presets_are_the_manifest_s_models():
    assert presets.check_shipped(verbose=False) == []
