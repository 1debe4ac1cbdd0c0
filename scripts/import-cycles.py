#!/usr/bin/env python3
"""Import cycles between the files of one crate.

Lists each file's edges to other files of the crate (`use crate::…`, `use super::…` and
inline `crate::…` paths, resolved to the longest module prefix that is a file) and the
strongly connected components of that graph, largest first. A parent naming its own child
modules (`mod x;` … `x::f`) is counted only with --children.

    scripts/import-cycles.py crates/server/src            # components of 2+ files
    scripts/import-cycles.py crates/server/src --edges    # and every file's edges
    scripts/import-cycles.py crates/server/src --max 4    # exit 1 if one spans more than 4
    scripts/import-cycles.py crates/server/src --children # parents' uses of children too
"""

import argparse
import os
import re
import sys

USE = re.compile(r"\buse\s+((?:crate|super|self)::[^;]+);", re.S)
CHILD = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", re.M)
INLINE = re.compile(r"\b((?:crate|super)(?:::\w+)+)")
COMMENT = re.compile(r"//[^\n]*")


def module_of(src, path):
    rel = os.path.relpath(path, src)[: -len(".rs")].split(os.sep)
    if rel[-1] in ("lib", "main") and len(rel) == 1:
        return ()
    if rel[-1] == "mod":
        rel = rel[:-1]
    return tuple(rel)


def expand(tree):
    """`a::{b, c::{d, self}}` → [a::b, a::c::d, a::c]."""
    tree = re.sub(r"\s+", "", tree)
    if "{" not in tree:
        return [tree.split(" as ")[0]]
    head, rest = tree.split("{", 1)
    inner = rest[: rest.rindex("}")]
    parts, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    parts.append(cur)
    out = []
    for p in filter(None, parts):
        for e in expand(p):
            out.append(head.rstrip(":") if e == "self" else head + e)
    return out


def absolute(module, path):
    segs = path.split("::")
    base = list(module)
    if segs[0] == "crate":
        base, segs = [], segs[1:]
    while segs and segs[0] in ("super", "self"):
        if segs[0] == "super":
            base = base[:-1]
        segs = segs[1:]
    return tuple(base + segs)


def graph(src, children=False):
    files = {}
    for root, _, names in os.walk(src):
        for n in names:
            if n.endswith(".rs"):
                p = os.path.join(root, n)
                files[module_of(src, p)] = os.path.relpath(p, src)
    edges = {f: set() for f in files.values()}
    for module, f in files.items():
        text = COMMENT.sub("", open(os.path.join(src, f), encoding="utf-8").read())
        paths = [p for u in USE.findall(text) for p in expand(u)]
        paths += INLINE.findall(USE.sub("", text))
        if children:
            for child in CHILD.findall(text):
                if re.search(rf"\b{child}::", text):
                    paths.append(f"self::{child}")
        for p in paths:
            target = absolute(module, p)
            while target and target not in files:
                target = target[:-1]
            to = files.get(target)
            if to and to != f and target:
                edges[f].add(to)
    return edges


def components(edges):
    """Tarjan's strongly connected components."""
    index, low, stack, on, out = {}, {}, [], set(), []
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(out, key=len, reverse=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", help="a crate's src directory")
    ap.add_argument("--edges", action="store_true", help="print every file's edges")
    ap.add_argument("--children", action="store_true", help="count parents' uses of children")
    ap.add_argument("--max", type=int, help="fail when a cycle spans more files")
    a = ap.parse_args()
    edges = graph(a.src, a.children)
    if a.edges:
        for f in sorted(edges):
            print(f"{f} -> {', '.join(sorted(edges[f])) or '-'}")
    cycles = [c for c in components(edges) if len(c) > 1]
    largest = len(cycles[0]) if cycles else 1
    for c in cycles:
        print(f"{len(c)} files: {' '.join(c)}")
    print(f"largest cycle: {largest} file(s)")
    if a.max is not None and largest > a.max:
        sys.exit(1)


if __name__ == "__main__":
    main()
