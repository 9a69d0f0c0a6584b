"""``info``: the current model version, its files, what each was made from, and what is missing."""
from __future__ import annotations

from ..output import emit_json


def register(sub) -> None:
    p = sub.add_parser("info", help="the current model version: its files, their sizes and inputs, what is missing",
                       description="List every artifact of the model schema for the CURRENT version: present "
                                   "(with size, sha256 and the inputs it was made from), damaged (listed but gone or "
                                   "changed: the error names the command that remakes it) or absent (never made; "
                                   "optional ones are fine).")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_info)


def describe_current(home) -> dict:
    from catalog import ModelStore

    from .. import pipeline

    version = ModelStore(home).open_current()
    artifacts = version.report()
    m = version.manifest
    stale = {}
    if m.get("dataset"):
        stale = {k: v for k, v in pipeline.stale(home, m["dataset"]).items() if v and k != "embed"}
    return {"version": version.name, "dataset": m.get("dataset"), "purpose": m.get("purpose", "use"),
            "created": m.get("created"), "parent": m.get("parent"), "code_version": m.get("code_version"),
            "split": version.stage("train").get("split"), "artifacts": artifacts,
            "damaged": [k for k, a in artifacts.items() if a["state"] == "damaged"],
            "absent": [k for k, a in artifacts.items() if a["state"] == "absent"],
            "stale": stale}


def run_info(args) -> int:
    from catalog import ArtifactError

    info = describe_current(args.home)
    if args.json:
        emit_json(info)
    else:
        split = info["split"] or {}
        print(f"model {info['version']} ({info['purpose']} model) on {info['dataset']}, made {info['created']}"
              + (f", split {split.get('name')}" if split else ""))
        for key, a in info["artifacts"].items():
            if a["state"] == "absent":
                line = f"  {a['file']:<20} absent{' (optional)' if a['optional'] else ''}: {a['what']}"
            else:
                inputs = ", ".join(f"{k} {str(v)[:12]}" for k, v in (a.get("inputs") or {}).items())
                line = (f"  {a['file']:<20} {a['state']:<8} {a['bytes']:>11,} B  sha256 {a['sha256'][:12]}"
                        + (f"  from {inputs}" if inputs else ""))
            print(line)
        for stage, why in info["stale"].items():
            print(f"  stale: {stage}: {why}")
    if info["damaged"]:
        raise ArtifactError(info["artifacts"][info["damaged"][0]]["error"])
    return 0
