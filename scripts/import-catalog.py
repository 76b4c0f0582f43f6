#!/usr/bin/env python3
"""Copy the public SkyPilot-format catalog snapshots into data/ and record where they came from.

Usage: python3 scripts/import-catalog.py [SOURCE_DIR]   (default: ../shared/catalog)

Re-runnable: it rewrites data/<cloud>.csv, data/accelerators.csv and data/catalog-manifest.tsv
from the snapshot files, normalising line endings to LF and nothing else (rows stay verbatim, in
source order). Each offer file's header is checked for the columns skyplan needs. Provenance
(source repository path, commit, gathered date) is read from SOURCE_DIR/SOURCES.md.
Only the Python standard library is used.
"""
import csv
import hashlib
import io
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
OFFER_FILES = ["aws", "gcp", "azure", "lambda", "runpod", "nebius"]
OTHER_FILES = ["accelerators"]
REQUIRED = ["InstanceType", "AcceleratorName", "AcceleratorCount", "vCPUs", "MemoryGiB",
            "Price", "SpotPrice", "Region"]


def provenance(sources_md: str, name: str):
    """(source path, commit) for `name`.csv from SOURCES.md, or ('?', '?')."""
    section = re.split(r"^### ", sources_md, flags=re.M)
    for block in section:
        if block.startswith(f"{name}.csv"):
            m = re.search(r"Source: `([^`]+)` at commit `([0-9a-f]{40})`", block)
            if m:
                return m.group(1), m.group(2)
    return "?", "?"


def main() -> int:
    src = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "catalog"
    if not src.is_dir():
        print(f"error: {src}: no such directory (pass the snapshot directory)", file=sys.stderr)
        return 2
    sources_md = (src / "SOURCES.md").read_text() if (src / "SOURCES.md").exists() else ""
    gathered = re.search(r"gathered (\d{4}-\d{2}-\d{2})", sources_md)
    gathered = gathered.group(1) if gathered else "?"
    DATA.mkdir(exist_ok=True)
    manifest = [("file", "rows", "sha256", "source_path", "source_commit", "gathered")]
    for name in OFFER_FILES + OTHER_FILES:
        path = src / f"{name}.csv"
        if not path.exists():
            print(f"error: {path}: missing from the snapshot", file=sys.stderr)
            return 1
        text = path.read_text(encoding="utf-8").replace("\r\n", "\n")
        rows = list(csv.reader(io.StringIO(text)))
        header = rows[0] if rows else []
        if name in OFFER_FILES:
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                print(f"error: {path}:1: missing columns {missing}", file=sys.stderr)
                return 1
        widths = {len(r) for r in rows if r}
        if len(widths) != 1:
            print(f"error: {path}: rows have differing field counts {sorted(widths)}", file=sys.stderr)
            return 1
        out = DATA / f"{name}.csv"
        out.write_text(text, encoding="utf-8")
        digest = hashlib.sha256(text.encode()).hexdigest()
        source_path, commit = provenance(sources_md, name)
        manifest.append((out.name, str(len(rows) - 1), digest, source_path, commit, gathered))
        print(f"{out.relative_to(ROOT)}: {len(rows) - 1} rows from {source_path} @ {commit[:10]}")
    with open(DATA / "catalog-manifest.tsv", "w", newline="") as f:
        csv.writer(f, delimiter="\t", lineterminator="\n").writerows(manifest)
    print("data/catalog-manifest.tsv written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
