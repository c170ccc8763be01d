"""update_manifest writes an exported run into the manifest and leaves everything else as it was."""
import json
import sys
import tomllib

from pixelzoo_ref import update_manifest
from pixelzoo_ref.repo import leg_lines

MANIFEST = """# header comment

[[model]]
id = "a"
sha256 = "old"

[model.metrics]
test_nll_nats = 90.0
test_images = 10000

[model.training]
seed = 1
images_seen = 100

[[model.training.legs]]
from = "scratch"
hardware = "a long note kept as it is"
end_images = 100

# a comment about b
[[model]]
id = "b"
sha256 = "untouched"
"""

# The run's legs, as the trainer records them in the weights' metadata.
LEGS = [
    {"from": "scratch", "hardware": "the run's own text", "end_images": 100},
    {"from": "../weights/a.safetensors", "hardware": "the run's own text", "started": "2026-12-02T21:00:00+00:00",
     "start_images": 100, "end_images": 250},
]

# What export_run prints for the run: its training table, then its legs.
RECORD = """sha256 = "new"

[model.training]
trainer = "reference/pixelzoo_ref/train.py"
seed = 2
images_seen = 250
""" + "".join("\n[[model.training.legs]]\n" + "\n".join(leg_lines(leg)) + "\n" for leg in LEGS)


def run(tmp_path, monkeypatch, *extra, model_id="a", manifest=None, given_class=None):
    """update_manifest of entry `model_id` of MANIFEST (or `manifest`) with RECORD; the new manifest's
    text. `given_class`: the eval of a class-conditional model also gives the NLL given the true class."""
    (tmp_path / "m.toml").write_text(manifest or MANIFEST)
    (tmp_path / "r.toml").write_text(RECORD)
    ev = {"id": model_id, "nll_nats_per_image": 85.4321, "images": 10000}
    if given_class is not None:
        ev["given_true_class"] = {"nll_nats_per_image": given_class, "bits_per_dim": 0.0}
    (tmp_path / "e.json").write_text(json.dumps(ev))
    argv = ["update_manifest", "--id", model_id, "--record", str(tmp_path / "r.toml"),
            "--eval", str(tmp_path / "e.json"), "--manifest", str(tmp_path / "m.toml"), *extra]
    monkeypatch.setattr(sys, "argv", argv)
    update_manifest.main()
    return (tmp_path / "m.toml").read_text()


def test_the_run_goes_in_and_the_rest_stays(tmp_path, monkeypatch):
    out = run(tmp_path, monkeypatch, "--hardware", "1 thread of a test machine")
    m = tomllib.loads(out)
    a, b = m["model"]
    assert a["sha256"] == "new" and a["metrics"]["test_nll_nats"] == 85.432
    assert a["training"]["seed"] == 2 and a["training"]["images_seen"] == 250
    legs = a["training"]["legs"]
    assert [leg["end_images"] for leg in legs] == [100, 250], "the kept leg, then the new one only"
    assert legs[0]["hardware"] == "a long note kept as it is"
    assert legs[1]["hardware"] == "1 thread of a test machine"
    assert b == {"id": "b", "sha256": "untouched"}
    assert out.startswith("# header comment\n") and "\n\n# a comment about b\n[[model]]\nid = \"b\"" in out


def test_a_record_with_nothing_new_is_refused(tmp_path, monkeypatch):
    global RECORD
    saved = RECORD
    RECORD = RECORD.split("\n[[model.training.legs]]\nfrom = \"../weights")[0]
    try:
        try:
            run(tmp_path, monkeypatch)
        except SystemExit as e:
            assert "nothing to add" in str(e)
        else:
            raise AssertionError("a record without a new leg was accepted")
        assert (tmp_path / "m.toml").read_text() == MANIFEST, "the manifest is left as it was"
    finally:
        RECORD = saved


def test_export_adds_only_the_runs_new_curve_rows(tmp_path):
    from pixelzoo_ref.curves import merge_curves
    head = "step,images,train_seconds,lr,train_nll,train_bpd,valid_nll,valid_bpd,leg\r\n"
    (tmp_path / "docs.csv").write_text(head + ",100,50,,,,90,,0\r\n1000,200,90,1e-3,89,,88,,1\r\n", newline="")
    (tmp_path / "run.csv").write_text(head + "1000,200,90,1e-3,89,,88,,1\r\n1000,300,150,5e-4,87,,86,,2\r\n", newline="")
    merge_curves(str(tmp_path / "run.csv"), str(tmp_path / "docs.csv"))
    text = (tmp_path / "docs.csv").read_bytes().decode()
    assert "\r" not in text  # committed curves use LF, whatever line ends the run's CSV had
    rows = text.split("\n")
    assert [r.split(",")[1] for r in rows[1:] if r] == ["100", "200", "300"]
    assert rows[0] + "\r\n" == head


# An entry whose [model.training] describes its first run in its own keys (as multiscale-cifar10's does).
FIRST_RUN_MANIFEST = """[[model]]
id = "m"
sha256 = "old"

[model.metrics]
test_nll_nats = 10526.8
test_images = 1000

[model.training]
trainer = "reference/pixelzoo_ref/train.py"
command = "python -m pixelzoo_ref.train --arch multiscale --dataset cifar10 --seed 1"
seed = 1
optimizer = "adam, lr 1e-3, cosine decay"
batch = 16
steps = 1675
images_seen = 100
train_seconds = 3601
selected_step = 1675
hardware = "1 thread of a 2-core x86-64 CPU"
validation = "best validation NLL at step 1675: 10532.5713 nats/image (4.9464 bits/dim)"

[[model]]
id = "n"
"""


def test_a_first_run_in_the_training_table_becomes_the_first_leg(tmp_path, monkeypatch):
    # RECORD: a fine-tune whose weights' metadata gave it a scratch leg of its own, the run that the
    # manifest's table describes
    out = run(tmp_path, monkeypatch, model_id="m", manifest=FIRST_RUN_MANIFEST)
    m, n = tomllib.loads(out)["model"]
    training = m["training"]
    assert "command" not in training and training["seed"] == 2, "the record's table replaced the old"
    first, second = training["legs"]
    # the first run, in the form of the manifest's other first legs; the record's scratch leg not again
    assert first == {
        "from": "scratch",
        "command": "python -m pixelzoo_ref.train --arch multiscale --dataset cifar10 --seed 1",
        "hardware": "1 thread of a 2-core x86-64 CPU",
        "optimizer": "adam, lr 1e-3, cosine decay",
        "end_images": 100,
        "end_seconds": 3601,
        "validation": "best validation NLL at step 1675: 10532.5713 nats/image (4.9464 bits/dim)",
    }
    assert list(first) == ["from", "command", "hardware", "optimizer", "end_images", "end_seconds", "validation"]
    assert (second["from"], second["start_images"], second["end_images"]) == ("../weights/a.safetensors", 100, 250)
    assert n == {"id": "n"}
    assert '(4.9464 bits/dim)"\n\n[[model.training.legs]]\nfrom = "../weights/a.safetensors"' in out


def test_a_conditional_model_s_given_class_figure_is_written_beside_the_marginal(tmp_path, monkeypatch):
    a = tomllib.loads(run(tmp_path, monkeypatch, given_class=83.21987))["model"][0]
    assert a["metrics"]["test_nll_nats"] == 85.432 and a["metrics"]["test_nll_nats_given_class"] == 83.22
    plain = tomllib.loads(run(tmp_path, monkeypatch))["model"][0]
    assert "test_nll_nats_given_class" not in plain["metrics"]
