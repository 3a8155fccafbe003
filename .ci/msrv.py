#!/usr/bin/env python3
"""Fails when a workspace package declares a `rust-version` below one of its dependencies'.

Only the stable and nightly toolchains are on the machines, so the MSRV is not built; instead, the
declared `rust-version` of every workspace package must be at least the highest `rust-version` of
any package in the lockfile's resolution with every feature on (normal, build and dev dependencies,
all targets), as `cargo metadata --all-features` reports it.
"""

import json
import subprocess
import sys


def version(text):
    parts = [int(p) for p in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def main():
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--all-features", "--locked"],
        check=True,
        stdout=subprocess.PIPE,
    ).stdout
    meta = json.loads(out)
    members = set(meta["workspace_members"])
    deps = [p for p in meta["packages"] if p["id"] not in members and p.get("rust_version")]
    if not deps:
        print("no dependency declares a rust-version", file=sys.stderr)
        return 1
    need = max(version(p["rust_version"]) for p in deps)
    needers = sorted(
        f'{p["name"]} {p["version"]}' for p in deps if version(p["rust_version"]) == need
    )
    shown = ".".join(str(n) for n in need)
    print(f"highest dependency rust-version: {shown} ({', '.join(needers)})")
    failed = False
    for p in meta["packages"]:
        if p["id"] not in members:
            continue
        declared = p.get("rust_version")
        if declared is None or version(declared) < need:
            print(
                f'{p["name"]} declares rust-version {declared or "(none)"}, below {shown}',
                file=sys.stderr,
            )
            failed = True
        else:
            print(f'{p["name"]}: rust-version {declared}')
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
