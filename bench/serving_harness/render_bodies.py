#!/usr/bin/env python3
# ruff: noqa
# Copied from ../shared/bench/serving (see README.md here); change: the {{column:NAME}} placeholder.
"""Render request bodies from a template and a file of rows.

A template is any text file (JSON, usually) with placeholders:
  {{columns}}  JSON array of column names, in the order of the first row's keys
  {{data}}     JSON array of row arrays (values in {{columns}} order)
  {{records}}  JSON array of row objects
  {{record}}   the first row of the batch as one JSON object (single-row APIs)
  {{column:NAME}}  flat JSON array of column NAME's values (e.g. a list of ids)
  {{n}}        number of rows in the batch
  {{i}}        index of the body (0..count-1), e.g. for a request id
Rows come from a JSON-lines file, one JSON object per line (make_model.py writes
rows.jsonl / rows_codes.jsonl). Body k uses rows [k*batch, (k+1)*batch), wrapping.

  python render_bodies.py --template templates/mlflow_dataframe_split.json.tmpl \
      --rows WORKDIR/rows_codes.jsonl --batch 1000 --count 4 --out-dir SCRATCH/bodies
"""
import argparse
import json
import os
import re

COLUMN = re.compile(r"\{\{column:([^}]+)\}\}")


def load_rows(path, limit=None):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
                if limit and len(rows) >= limit:
                    break
    if not rows:
        raise SystemExit(f"no rows in {path}")
    return rows


def render(template, rows, batch, index=0):
    start = (index * batch) % len(rows)
    chunk = [rows[(start + k) % len(rows)] for k in range(batch)]
    cols = list(chunk[0].keys())
    dumps = lambda o: json.dumps(o, separators=(",", ":"))
    subs = {"{{n}}": str(batch), "{{i}}": str(index)}
    if "{{columns}}" in template:
        subs["{{columns}}"] = dumps(cols)
    if "{{data}}" in template:
        subs["{{data}}"] = dumps([[r.get(c) for c in cols] for r in chunk])
    if "{{records}}" in template:
        subs["{{records}}"] = dumps(chunk)
    if "{{record}}" in template:
        subs["{{record}}"] = dumps(chunk[0])
    for name in COLUMN.findall(template):
        subs["{{column:" + name + "}}"] = dumps([r.get(name) for r in chunk])
    out = template
    for k, v in subs.items():
        out = out.replace(k, v)
    return out.strip() + "\n" if template.endswith("\n") else out


def render_files(template_path, rows, batch, count, out_dir):
    with open(template_path) as f:
        template = f.read()
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for i in range(count):
        p = os.path.join(out_dir, f"body_{batch}_{i:04d}.json")
        with open(p, "w") as f:
            f.write(render(template, rows, batch, i).rstrip("\n"))
        paths.append(p)
    return paths


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--template", required=True)
    ap.add_argument("--rows", required=True)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--out-dir", required=True)
    a = ap.parse_args()
    rows = load_rows(a.rows)
    for p in render_files(a.template, rows, a.batch, a.count, a.out_dir):
        print(p, os.path.getsize(p), "bytes")


if __name__ == "__main__":
    main()
