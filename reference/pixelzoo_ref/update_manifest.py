"""Write an exported run into weights-manifest.toml: the new sha256, the zoo's test figure, the
`[model.training]` table and the run's new legs, leaving the rest of the file as it is.

    python -m pixelzoo_ref.export_run --id ID > record.toml
    zoo eval ID --data-dir ../shared/data --json > eval.json      # (from the repository root)
    python -m pixelzoo_ref.update_manifest --id ID --record record.toml --eval eval.json \\
        [--hardware "TEXT for the new legs"] [--manifest ../weights-manifest.toml]

The record is `export_run`'s output. Legs already in the manifest are kept with their text (their
hardware notes are often longer than the run's own); the record's legs that start at or after the
last kept leg's end are appended, with `--hardware` replacing their hardware line if given. The test
figure comes from the zoo's own eval (Candle), never from this package, which reads no test images.

An entry whose `[model.training]` describes its one run in its own keys (`command`, `optimizer`,
`hardware`, `images_seen`, `train_seconds`, `validation`: the form from before runs had legs) keeps
that run: it becomes the entry's first leg, `from = "scratch"`, before the table is replaced.
"""
import argparse
import json
import re
import tomllib

from . import repo
from .repo import leg_lines, toml_str


def model_block(lines, model_id):
    """(start, end) line indices of the [[model]] entry with this id; comment lines just above the
    next entry belong to that entry."""
    starts = [i for i, l in enumerate(lines) if l.strip() == "[[model]]"]
    for k, s in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(lines)
        if any(l.strip() == f"id = {toml_str(model_id)}" for l in lines[s:end]):
            while end > s and (lines[end - 1].startswith("#") or not lines[end - 1].strip()):
                end -= 1
            return s, end
    raise SystemExit(f"no [[model]] with id = {model_id!r} in the manifest")


def tables(block):
    """Split an entry's lines into (header, lines) tables; the first header is '[[model]]'."""
    out = []
    for line in block:
        if line.startswith("["):
            out.append([line, []])
        else:
            out[-1][1].append(line)
    return out


def render(tabs):
    lines = []
    for header, body in tabs:
        lines.append(header)
        lines.extend(body)
    return lines


def set_key(body, key, value):
    """Replace `key = ...` in a table's lines (appending it before trailing blanks if absent)."""
    for i, line in enumerate(body):
        if re.match(rf"{re.escape(key)}\s*=", line):
            body[i] = f"{key} = {value}"
            return
    at = len(body)
    while at > 0 and not body[at - 1].strip():
        at -= 1
    body.insert(at, f"{key} = {value}")


def first_run_leg(training):
    """The leg of a run that a `[model.training]` table (a dict) describes in its own keys, or None
    when it describes none (it has no `command`)."""
    if "command" not in training:
        return None
    leg = {"from": "scratch"}
    for key, leg_key in (("command", "command"), ("hardware", "hardware"), ("optimizer", "optimizer"),
                         ("images_seen", "end_images"), ("train_seconds", "end_seconds"),
                         ("validation", "validation")):
        if key in training:
            leg[leg_key] = training[key]
    return leg


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--id", required=True)
    p.add_argument("--record", required=True, help="export_run's output")
    p.add_argument("--eval", required=True, help="`zoo eval ID --json` output")
    p.add_argument("--hardware", help="hardware line for the record's new legs")
    p.add_argument("--manifest", default=repo.MANIFEST)
    a = p.parse_args()

    record_text = open(a.record).read()
    record = tomllib.loads(record_text)
    ev = json.load(open(a.eval))
    if ev["id"] != a.id:
        raise SystemExit(f"the eval is of {ev['id']}, not {a.id}")

    text = open(a.manifest).read()
    lines = text.split("\n")
    s, e = model_block(lines, a.id)
    tabs = tables(lines[s:e])

    set_key(tabs[0][1], "sha256", toml_str(record["sha256"]))
    metrics = next(t for t in tabs if t[0] == "[model.metrics]")
    set_key(metrics[1], "test_nll_nats", f"{ev['nll_nats_per_image']:.3f}")
    if any(l.startswith("test_bits_per_dim") for l in metrics[1]):
        set_key(metrics[1], "test_bits_per_dim", f"{ev['bits_per_dim']:.5f}")
    set_key(metrics[1], "test_images", str(ev["images"]))
    if "given_true_class" in ev:  # a class-conditional model: the NLL given the true classes
        set_key(metrics[1], "test_nll_nats_given_class", f"{ev['given_true_class']['nll_nats_per_image']:.3f}")

    # A run the old [model.training] table describes in its own keys becomes the first leg.
    ti = next(i for i, t in enumerate(tabs) if t[0] == "[model.training]")
    kept = [t for t in tabs if t[0] == "[[model.training.legs]]"]
    kept_legs = [tomllib.loads("\n".join(t[1])) for t in kept]
    first = first_run_leg(tomllib.loads("\n".join(tabs[ti][1])))
    if first is not None and not any(leg.get("from") == "scratch" for leg in kept_legs):
        first_tab = ["[[model.training.legs]]", leg_lines(first) + [""]]
        tabs.insert(ti + 1, first_tab)
        kept.insert(0, first_tab)
        kept_legs.insert(0, first)

    # The [model.training] table: the record's own lines (up to its first leg).
    rec_lines = record_text.split("\n")
    t0 = rec_lines.index("[model.training]")
    t1 = next((i for i, l in enumerate(rec_lines) if l == "[[model.training.legs]]"), len(rec_lines))
    tabs[ti][1] = [l for l in rec_lines[t0 + 1:t1] if l.strip()] + [""]

    # The record's legs after the kept ones (those it shares with them start before their end).
    last_end = max((leg.get("end_images", 0) for leg in kept_legs), default=0)
    kept_starts = {leg.get("started") for leg in kept_legs}
    new_legs = []
    for leg in record.get("model", {}).get("training", {}).get("legs", []):
        if leg.get("start_images", 0) < last_end or leg.get("started") in kept_starts:
            continue
        if a.hardware:
            leg["hardware"] = a.hardware
        new_legs.append(["[[model.training.legs]]", leg_lines(leg) + [""]])
    if not new_legs:
        raise SystemExit("the record has no leg after the manifest's last one; nothing to add")
    if kept and kept[-1][1] and kept[-1][1][-1].strip():
        kept[-1][1].append("")
    tabs.extend(new_legs)

    block = render(tabs)
    while block and not block[-1].strip():
        block.pop()
    lines[s:e] = block
    out = "\n".join(lines)
    tomllib.loads(out)  # still valid TOML
    open(a.manifest, "w").write(out)
    print(f"{a.id}: sha256, metrics ({ev['nll_nats_per_image']:.3f} nats/image), training and {len(new_legs)} new leg(s) written")


if __name__ == "__main__":
    main()
