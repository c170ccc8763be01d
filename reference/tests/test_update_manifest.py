"""update_manifest writes an exported run into the manifest and leaves everything else as it was."""
import json
import sys
import tomllib

from pixelzoo_ref import update_manifest

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

RECORD = """sha256 = "new"

[model.training]
trainer = "reference/pixelzoo_ref/train.py"
seed = 2
images_seen = 250

[[model.training.legs]]
from = "scratch"
hardware = "the run's own text"
end_images = 100

[[model.training.legs]]
from = "../weights/a.safetensors"
hardware = "the run's own text"
started = "2026-12-02T21:00:00+00:00"
start_images = 100
end_images = 250
"""


def run(tmp_path, monkeypatch, *extra):
    (tmp_path / "m.toml").write_text(MANIFEST)
    (tmp_path / "r.toml").write_text(RECORD)
    (tmp_path / "e.json").write_text(json.dumps({"id": "a", "nll_nats_per_image": 85.4321, "images": 10000}))
    argv = ["update_manifest", "--id", "a", "--record", str(tmp_path / "r.toml"), "--eval", str(tmp_path / "e.json"),
            "--manifest", str(tmp_path / "m.toml"), *extra]
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
