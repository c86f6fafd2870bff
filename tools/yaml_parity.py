#!/usr/bin/env python3
"""Compare this project's YAML reading with PyYAML's (what StackStorm uses) over many files.

Usage: tools/yaml_parity.py DIR...   (needs PyYAML: pip install pyyaml)
Builds and runs the st2-core `yaml_to_json` example and reports every file whose value differs.
"""
import datetime
import json
import math
import os
import subprocess
import sys

import yaml


def files(roots):
    for root in roots:
        for dirpath, _, names in os.walk(root):
            for name in sorted(names):
                if name.endswith((".yaml", ".yml")):
                    yield os.path.join(dirpath, name)


def normalise(value):
    """What PyYAML gives, made JSON-comparable the way this project keeps it."""
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, bool) else k: normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    if isinstance(value, (datetime.date, datetime.datetime)):
        return "<date>"
    if isinstance(value, float) and not math.isfinite(value):
        return "<nonfinite>"
    return value


def main():
    paths = list(files(sys.argv[1:]))
    out = subprocess.run(
        ["cargo", "run", "-q", "-p", "st2-core", "--example", "yaml_to_json", "--"] + paths,
        check=True, capture_output=True, text=True,
    ).stdout
    ours = {}
    for line in out.splitlines():
        item = json.loads(line)
        ours[item["file"]] = item
    differ = 0
    for path in paths:
        try:
            with open(path, encoding="utf-8") as fd:
                theirs = {"value": normalise(yaml.safe_load(fd))}
        except Exception as e:  # noqa: BLE001 - any PyYAML failure is a result to compare
            theirs = {"error": str(e).splitlines()[0]}
        mine = ours[path]
        if "error" in theirs or "error" in mine:
            if ("error" in theirs) != ("error" in mine):
                differ += 1
                print(f"DIFF {path}: pyyaml={theirs} ours={mine.get('error', 'ok')}")
            continue
        if json.dumps(theirs["value"], sort_keys=True) != json.dumps(mine["value"], sort_keys=True):
            if "<date>" in json.dumps(theirs["value"]) or "<nonfinite>" in json.dumps(theirs["value"]):
                continue  # kept as text here, with a warning
            differ += 1
            print(f"DIFF {path}")
    print(f"{len(paths)} files, {differ} differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
