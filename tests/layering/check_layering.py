#!/usr/bin/env python3
"""Checks every include of the production sources against the layer DAG.

The layers come from README.md's "## Layout" table, read top to bottom down
to the `clients/` row (the rows below it - bench, deploy, tests, scripts,
models - are not layers). A row whose "library / binary" column names a
library (coreml_proto, coremlz_*) is a layer stacked on the rows above it; the
rows naming only programs (service/, workers/, clients/) sit side by side on
top of every library and never include each other.

A row's directories give its include prefixes: `api/` gives "api/", and
`protos/coremlz/v1` gives "coremlz/" (generated protos are included relative
to protos/). A file may include its own layer, lower layers and third-party
headers; an include naming a repository directory that is no layer (tests/,
bench/) is a violation too.

Usage: check_layering.py ROOT [--readme README.md] [--exceptions FILE]
The exceptions file lists known violations, one `file header` a line; one that
no longer occurs is an error, so the list cannot go stale.
Exit status: 0 clean, 1 violations or stale exceptions, 2 unreadable README.
"""

import argparse
import os
import re
import sys

SOURCE_SUFFIXES = (".h", ".hpp", ".cc", ".cpp")
INCLUDE = re.compile(r'^\s*#\s*include\s*["<]([^">]+)[">]')
LIBRARY = re.compile(r"`(coreml_proto|coremlz_\w+)`")

# README gives protos/coreml a row of its own that names no source directory;
# format is the layer that reads and writes it ("Core ML I/O"), so its protos
# count as format's, the way protos/coremlz/v1 shares api's row.
PROTOS_OWNED_BY = {"coreml": "format"}


class Layer:
    def __init__(self, name, rank, prefixes):
        self.name = name          # the source directory, e.g. "engine"
        self.rank = rank          # libraries 0, 1, ...; programs all share the top rank
        self.prefixes = prefixes  # first path components it owns: "engine", "coreml"
        self.program = False


def read_layers(readme_path):
    """Layers from the README's Layout table, in order, keyed by prefix."""
    with open(readme_path, encoding="utf-8") as f:
        text = f.read()
    section = re.search(r"^## Layout\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    if not section:
        raise ValueError(f"{readme_path}: no '## Layout' section")
    rows = []
    for line in section.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not line.lstrip().startswith("|"):
            continue
        dirs = re.findall(r"`([^`]+)`", cells[0])
        if not dirs:
            continue  # header and separator rows
        rows.append((dirs, cells[1]))
        if any(d.rstrip("/") == "clients" for d in dirs):
            break
    else:
        raise ValueError(f"{readme_path}: Layout table has no `clients/` row")

    layers, orphan_protos = [], []
    for dirs, binaries in rows:
        sources = [d.rstrip("/") for d in dirs if not d.startswith("protos/")]
        protos = [d.split("/")[1] for d in dirs if d.startswith("protos/")]
        if not sources:
            orphan_protos += protos
            continue
        for name in sources:
            layer = Layer(name, len(layers), [name] + protos)
            layer.program = not LIBRARY.search(binaries)
            layers.append(layer)
    programs = [l for l in layers if l.program]
    if programs and any(not l.program for l in layers[layers.index(programs[0]):]):
        raise ValueError(f"{readme_path}: a library row comes after a program row")
    for l in programs:
        l.rank = layers.index(programs[0])
    by_prefix = {p: l for l in layers for p in l.prefixes}
    for proto in orphan_protos:
        owner = PROTOS_OWNED_BY.get(proto)
        if owner not in by_prefix:
            raise ValueError(f"{readme_path}: no layer owns protos/{proto}")
        by_prefix[proto] = by_prefix[owner]
    return layers, by_prefix


def may_include(source, target):
    if source is target:
        return True
    if source.program:
        return not target.program
    return target.rank < source.rank


def violations(root, layers, by_prefix):
    """Yields (file, line number, layer, header, other layer name)."""
    repo_dirs = {d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))}
    for layer in layers:
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, layer.name)):
            dirnames.sort()
            for filename in sorted(filenames):
                if not filename.endswith(SOURCE_SUFFIXES):
                    continue
                path = os.path.join(dirpath, filename)
                rel = os.path.relpath(path, root)
                with open(path, encoding="utf-8", errors="replace") as f:
                    for number, line in enumerate(f, 1):
                        match = INCLUDE.match(line)
                        if not match or "/" not in match.group(1):
                            continue
                        header = match.group(1)
                        prefix = header.split("/")[0]
                        other = by_prefix.get(prefix)
                        if other is None:
                            if prefix in repo_dirs:  # tests/, bench/: never production's
                                yield rel, number, layer.name, header, "none"
                            continue  # third-party: absl/, grpcpp/, Eigen/, ...
                        if not may_include(layer, other):
                            yield rel, number, layer.name, header, other.name


def read_exceptions(path):
    exceptions = set()
    if path:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.split("#")[0].strip()
                if line:
                    source, header = line.split()
                    exceptions.add((source, header))
    return exceptions


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root")
    parser.add_argument("--readme", help="default: ROOT/README.md")
    parser.add_argument("--exceptions", help="known violations, `file header` a line")
    args = parser.parse_args()
    try:
        layers, by_prefix = read_layers(args.readme or os.path.join(args.root, "README.md"))
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    exceptions = read_exceptions(args.exceptions)
    seen, failed = set(), False
    for rel, number, layer, header, other in violations(args.root, layers, by_prefix):
        if (rel, header) in exceptions:
            seen.add((rel, header))
            continue
        print(f"{rel}:{number}: {layer} includes {header} (layer {other})")
        failed = True
    for rel, header in sorted(exceptions - seen):
        print(f"{args.exceptions}: stale exception: {rel} no longer includes {header}; remove the line")
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
