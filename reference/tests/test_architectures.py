"""The places a new architecture must touch, checked against each other so that a missed one fails
a test (the README's code map lists them): the Rust library's table (`src/architecture.rs`), the
workspace's crate, this reference's config names, network builder and random fixtures, and the
fixture files the Rust tests read."""
import os
import re
import tomllib

import pytest

from pixelzoo_ref import nets
from pixelzoo_ref.config import ARCHITECTURES, NAMES
from pixelzoo_ref.fixtures import RANDOM

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def rust_architectures():
    """The manifest names of the `architectures! { Variant => "name", Config, Network; ... }` table
    of src/architecture.rs, which `ARCHITECTURES` is made from."""
    src = open(os.path.join(ROOT, "src", "architecture.rs")).read()
    m = re.search(r"^architectures! \{\n(.*?)^\}", src, re.S | re.M)
    assert m, "src/architecture.rs no longer has its `architectures! { ... }` table"
    return tuple(re.findall(r'^\s*\w+ => "([a-z0-9-]+)",', m.group(1), re.M))


def test_the_rust_table_and_the_reference_name_the_same_architectures():
    assert sorted(rust_architectures()) == sorted(ARCHITECTURES)
    assert all(NAMES[a] for a in ARCHITECTURES)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_each_architecture_is_a_workspace_crate(arch):
    with open(os.path.join(ROOT, "Cargo.toml"), "rb") as f:
        members = tomllib.load(f)["workspace"]["members"]
    assert f"models/{arch}" in members, f"add models/{arch} to the workspace members"
    with open(os.path.join(ROOT, "models", arch, "Cargo.toml"), "rb") as f:
        assert tomllib.load(f)["package"]["name"] == arch


@pytest.mark.parametrize("arch,name", list(RANDOM))
def test_each_random_fixture_builds_here_and_is_committed(arch, name):
    cfg = dict(architecture=arch, **RANDOM[(arch, name)])
    nets.build(cfg)
    for suffix in (".safetensors", ".logits.safetensors"):
        path = os.path.join(ROOT, "tests", "fixtures", f"{arch}-random-{name}{suffix}")
        assert os.path.exists(path), f"run `python -m pixelzoo_ref.fixtures --only {arch}` to write {path}"


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_each_crate_runs_the_shared_model_suite(arch):
    tests = os.path.join(ROOT, "models", arch, "tests")
    sources = [open(os.path.join(tests, f)).read() for f in os.listdir(tests) if f.endswith(".rs")] \
        if os.path.isdir(tests) else []
    assert any("model_tests!" in s for s in sources), \
        f"models/{arch}/tests/ must run pixel_ops::model_tests! over the {arch}-random-* fixtures"
