"""publish.py: the hub repository of a model, checked with huggingface_hub's own reading of the card.

    cd reference && ../.venv/bin/python -m pytest tests/test_publish.py

No network: the card is parsed and its eval results validated by `ModelCard.load` (the hub's
online validator, `ModelCard.validate`, is what `publish --validate` / `--push` add); `--push` is
checked against a stand-in for `HfApi` that records the calls.
"""
import hashlib
import json
import os

import pytest
from huggingface_hub import ModelCard, ModelCardData

from pixelzoo_ref import publish, repo

REQUIRED_TAGS = {"autoregressive", "image-generation", "candle", "safetensors"}


@pytest.mark.parametrize("model_id", ["pixelcnn-cifar10", "pixelcnn-mnist", "row-lstm-mnist", "multiscale-cifar10"])
def test_repository_holds_weights_config_and_a_card_the_library_accepts(tmp_path, model_id):
    out = tmp_path / model_id
    publish.write_repository(model_id, str(out))
    entry = repo.models()[model_id]
    assert sorted(os.listdir(out)) == sorted(["README.md", "config.json", "samples.png", entry["weights"]])

    weights = (out / entry["weights"]).read_bytes()
    assert hashlib.sha256(weights).hexdigest() == entry["sha256"]
    config = json.loads((out / "config.json").read_text())
    assert (config["architecture"], config["dataset"], config["config"]) == (
        entry["architecture"], entry["dataset"], entry["config"])
    assert config["parameters"] > 1000

    # The library's reading of the card (front matter parsed, eval results validated).
    card = ModelCard.load(str(out / "README.md"), ignore_metadata_errors=False)
    data = card.data
    assert isinstance(data, ModelCardData)
    assert data.license == "other" and data.license_name == "mit-or-apache-2.0"
    assert REQUIRED_TAGS <= set(data.tags)
    assert ("pixelcnn" in data.tags) == (entry["architecture"] == "pixelcnn")
    assert ("pixelrnn" in data.tags) == (entry["architecture"] != "pixelcnn")
    cifar = entry["dataset"] == "cifar10"
    assert data.datasets == ["uoft-cs/cifar10" if cifar else "ylecun/mnist"]
    # model-index: one result, the manifest's test NLL, on the test split.
    assert data.model_name == model_id
    (result,) = data.eval_results
    metrics = entry["metrics"]
    assert result.metric_type == "nll" and result.dataset_split == "test"
    assert result.metric_value == (metrics["test_bits_per_dim"] if cifar else metrics["test_nll_nats"])
    assert ("first 1,000 test images" in result.metric_name) == (metrics["test_images"] == 1000)
    assert "model-index" in data.to_dict()

    body = card.text
    for section in ("## Evaluation", "## Training", "## Use it from the zoo", "## Limits", "## Licence"):
        assert section in body, section
    assert 'src="samples.png"' in body
    assert f"zoo -- eval {model_id}" in body and f"data fetch {'cifar10' if cifar else 'mnist'}" in body
    assert metrics["measured_with"] in body
    # The training record of the manifest, every leg of it.
    training = entry["training"]
    for leg in training.get("legs", []):
        assert leg["command"] in body
    if "command" in training:
        assert training["command"] in body


def test_third_party_and_unknown_ids_and_a_used_folder_are_refused(tmp_path):
    with pytest.raises(SystemExit, match="third-party"):
        publish.write_repository("diagonal-bilstm-mnist-lasagne", str(tmp_path / "a"))
    with pytest.raises(SystemExit, match="unknown model id"):
        publish.write_repository("pixelcnn-mnsit", str(tmp_path / "b"))
    used = tmp_path / "used"
    used.mkdir()
    (used / "x").write_text("mine")
    with pytest.raises(SystemExit, match="not empty"):
        publish.write_repository("pixelcnn-mnist", str(used))
    assert os.listdir(used) == ["x"]
    assert sorted(os.listdir(tmp_path)) == ["used"], "nothing half-made is left beside"


def test_a_weights_file_that_is_not_the_manifest_s_is_refused(tmp_path):
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "pixelcnn-mnist.safetensors").write_bytes(b"not the weights")
    with pytest.raises(SystemExit, match="sha256"):
        publish.write_repository("pixelcnn-mnist", str(tmp_path / "out"), weights_dir=str(weights))
    assert not (tmp_path / "out").exists()


class RecordingApi:
    """Stands in for HfApi: records the calls, answers upload_folder with a commit."""

    def __init__(self):
        self.calls = []

    def create_repo(self, **kw):
        self.calls.append(("create_repo", kw))

    def upload_folder(self, **kw):
        self.calls.append(("upload_folder", kw))
        files = sorted(os.listdir(kw["folder_path"]))
        return type("CommitInfo", (), {"oid": hashlib.sha1("".join(files).encode()).hexdigest()})()


def test_push_creates_the_repository_and_uploads_the_folder(tmp_path):
    out = tmp_path / "pixelcnn-mnist"
    publish.write_repository("pixelcnn-mnist", str(out))
    api = RecordingApi()
    commit = publish.push(str(out), "someone/pixelcnn-mnist", api=api)
    assert [c[0] for c in api.calls] == ["create_repo", "upload_folder"]
    assert api.calls[0][1]["repo_id"] == "someone/pixelcnn-mnist" and api.calls[0][1]["exist_ok"]
    upload = api.calls[1][1]
    assert (upload["repo_id"], upload["repo_type"], upload["folder_path"]) == (
        "someone/pixelcnn-mnist", "model", str(out))
    assert len(commit) == 40
