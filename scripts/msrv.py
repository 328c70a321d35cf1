#!/usr/bin/env python3
"""The minimum supported Rust version of each published crate, from its dependencies.

    scripts/msrv.py

For each published crate, walks its normal and build dependencies (all features on, as
Cargo.lock resolves them, for the platforms users run it on: Linux, macOS, Windows) and
takes the highest `rust-version` they declare. Prints, per crate, that version, the
dependency chain that sets it and the crate's own `rust-version`; exits 1 when a crate
declares less than its dependencies need. (What our own code needs of the standard library
is checked by clippy's `incompatible_msrv` lint against the declared `rust-version`.)
"""
from __future__ import annotations

import json
import subprocess
import sys

PUBLISHED = ["diffusion-proto", "diffusion-client", "diffusion-tokio", "diffusion-async-std",
             "diffusion-test-server"]
PLATFORMS = ["x86_64-unknown-linux-gnu", "aarch64-apple-darwin", "x86_64-pc-windows-msvc"]


def version(text: str | None) -> tuple[int, ...]:
    """`1.88` and `1.88.0` alike as (1, 88, 0); none as (0, 0, 0)."""
    parts = [int(part) for part in text.split(".")] if text else []
    return tuple((parts + [0, 0, 0])[:3])


def highest(metadata: dict, root_name: str) -> tuple[tuple[int, ...], str, list[str]]:
    """The highest rust-version among root's normal and build dependencies, and the chain."""
    packages = {p["id"]: p for p in metadata["packages"]}
    nodes = {n["id"]: n for n in metadata["resolve"]["nodes"]}
    root = next(p["id"] for p in metadata["packages"] if p["name"] == root_name)
    parent: dict[str, str] = {}
    stack, seen = [root], {root}
    while stack:
        node = stack.pop()
        for dep in nodes[node]["deps"]:
            if dep["pkg"] in seen or not any(k["kind"] in (None, "build") for k in dep["dep_kinds"]):
                continue
            seen.add(dep["pkg"])
            parent[dep["pkg"]] = node
            stack.append(dep["pkg"])
    seen.discard(root)
    if not seen:
        return version(None), "-", []
    top = max(seen, key=lambda i: version(packages[i].get("rust_version")))
    chain, node = [], top
    while node != root:
        chain.append(f'{packages[node]["name"]} {packages[node]["version"]}')
        node = parent[node]
    return version(packages[top].get("rust_version")), packages[top].get("rust_version") or "-", chain


def main() -> int:
    needed: dict[str, tuple[tuple[int, ...], str, list[str], str]] = {}
    declared: dict[str, str] = {}
    for platform in PLATFORMS:
        out = subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--all-features", "--locked",
             "--filter-platform", platform],
            check=True, capture_output=True, text=True).stdout
        metadata = json.loads(out)
        for name in PUBLISHED:
            declared[name] = next(p.get("rust_version") or "-"
                                  for p in metadata["packages"] if p["name"] == name)
            v, text, chain = highest(metadata, name)
            if name not in needed or v > needed[name][0]:
                needed[name] = (v, text, chain, platform)
    failed = False
    for name in PUBLISHED:
        v, text, chain, platform = needed[name]
        ok = version(declared[name]) >= v
        failed |= not ok
        print(f'{name:22} declares {declared[name]:6} dependencies need {text:6} '
              f'({" <- ".join(chain)}; {platform}){"" if ok else "  TOO LOW"}')
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
