#!/usr/bin/env python3
"""The layout checks of issue 19, over a crate's src/: no source file over
600 lines, no function over 80 lines outside tests, and no import cycle
between files (A uses B and B uses A, directly or through others).

Usage: layout.py [SRC_DIR] [--max-file 600] [--max-fn 80]
Exit 1 when a check fails, printing what failed; 0 with a summary otherwise.

How it reads Rust (text, not a parser; enough for this tree):
- comments, string and char literals are blanked before anything is read;
- `#[cfg(test)]` items (the `mod tests { .. }` beside the code) are skipped;
- a file "uses" another when it names a path into it: `use crate::a::b`,
  `crate::a::B` in code, `super::x`, `self::x`, a child module's
  `child::x`, grouped `use` trees included; `mod x;` declarations and
  `pub(in path)` visibility are not uses. A path resolves to the
  deepest module file it names (`crate::reactor::Context` is a use of
  src/reactor/mod.rs, even if Context is defined deeper and re-exported).
- the library (lib.rs) and the binary (main.rs) are separate crates; the
  binary's `herald::` paths point into the library and cannot close a
  cycle.
- a function is `fn` to its closing brace; a function whose body is mostly
  a literal table may be marked with a `// layout: table` comment on the
  line before it.
"""

import os
import re
import sys


def blank(text):
    """Blank comments, strings and chars, keeping line structure."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'r(#*)"', text[i:])
            hashes = m.group(1)
            end = text.find('"' + hashes, i + len(m.group(0)))
            end = n if end < 0 else end + 1 + len(hashes)
            out.append('""' + re.sub(r"[^\n]", " ", text[i + 2:end]))
            i = end
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('"' + re.sub(r"[^\n]", " ", text[i + 1:j]) + '"')
            i = j + 1
        elif c == "'":
            m = re.match(r"'(\\.|\\x[0-9a-fA-F]{2}|\\u\{[0-9a-fA-F]+\}|[^\\'])'", text[i:i + 12])
            if m:
                out.append("' '" + " " * (len(m.group(0)) - 3))
                i += len(m.group(0))
            else:  # a lifetime
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def match_brace(text, open_idx):
    depth = 0
    for j in range(open_idx, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return len(text) - 1


def strip_tests(code):
    """Blank every `#[cfg(test)]` item (keeps line numbers)."""
    while True:
        m = re.search(r"#\[cfg\(test\)\]", code)
        if not m:
            return code
        rest = code[m.end():]
        semi = rest.find(";")
        brace = rest.find("{")
        if brace < 0 or (0 <= semi < brace):
            end = m.end() + semi
        else:
            end = match_brace(code, m.end() + brace)
        code = code[:m.start()] + re.sub(r"[^\n]", " ", code[m.start():end + 1]) + code[end + 1:]


def module_of(path, root):
    rel = os.path.relpath(path, root)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib", "main"):
        rel = rel[:-1]
    return tuple(rel)


def expand_use(tree):
    """`a::{b, c::{d, e}}` -> [a::b, a::c::d, a::c::e]."""
    tree = re.sub(r"\s+as\s+\w+", "", tree)
    tree = re.sub(r"\s+", "", tree)
    m = re.match(r"^(.*?)\{(.*)\}$", tree)
    if not m:
        return [tree]
    prefix, inner = m.group(1), m.group(2)
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
    for p in parts:
        if p:
            out += [prefix + q for q in expand_use(p)]
    return out


def paths_in(code):
    paths = []
    for m in re.finditer(r"\buse\s+([^;]+);", code):
        paths += expand_use(m.group(1))
    code = re.sub(r"\buse\s+[^;]+;", "", code)
    # `pub(in crate::a)` restricts visibility; it does not use `a`.
    code = re.sub(r"\bpub\s*\(\s*in\s+[\w:]+\s*\)", "pub", code)
    paths += re.findall(r"(?<![:\w])\w+(?:::\w+)+", code)
    return paths


def resolve(path, here, is_dir_mod, modules):
    segs = [s for s in path.split("::") if s]
    if not segs:
        return None
    cur = list(here) if is_dir_mod else list(here)
    if segs[0] == "crate":
        cur, segs = [], segs[1:]
    elif segs[0] in ("super", "self"):
        # a file's own module is `here`; super of a non-mod file is its parent
        while segs and segs[0] in ("super", "self"):
            if segs[0] == "super":
                cur = cur[:-1]
            segs = segs[1:]
    elif tuple(cur + segs[:1]) not in modules:
        return None  # an external crate, a type's path or a local name
    best = tuple(cur) if tuple(cur) in modules else None
    for s in segs:
        cur.append(s)
        if tuple(cur) in modules:
            best = tuple(cur)
        else:
            break
    return best


def cycles(graph):
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
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
            if len(comp) > 1:
                sccs.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    return sccs


def main():
    args = sys.argv[1:]
    max_file, max_fn = 600, 80
    if "--max-file" in args:
        i = args.index("--max-file")
        max_file = int(args[i + 1])
        del args[i:i + 2]
    if "--max-fn" in args:
        i = args.index("--max-fn")
        max_fn = int(args[i + 1])
        del args[i:i + 2]
    root = args[0] if args else "src"
    files = []
    for d, _, names in os.walk(root):
        files += [os.path.join(d, f) for f in names if f.endswith(".rs")]
    files.sort()
    bin_files = {f for f in files if os.path.relpath(f, root) == "main.rs" or os.path.relpath(f, root).startswith(("cli" + os.sep, "bin" + os.sep))}
    failed = []
    for crate_files in (sorted(set(files) - bin_files), sorted(bin_files)):
        modules = {}
        for f in crate_files:
            rel = os.path.relpath(f, root)
            if rel == "main.rs":
                modules[()] = f
            else:
                modules[module_of(f, root)] = f
        graph = {}
        for f in crate_files:
            raw = open(f, encoding="utf-8").read()
            lines = raw.count("\n") + (0 if raw.endswith("\n") else 1)
            if lines > max_file:
                failed.append(f"file {f}: {lines} lines (over {max_file})")
            code = strip_tests(blank(raw))
            here = module_of(f, root) if os.path.relpath(f, root) != "main.rs" else ()
            is_dir_mod = os.path.basename(f) in ("mod.rs", "lib.rs", "main.rs")
            # a non-mod file's `super` is its parent: model `here` as the file's own module
            edges = set()
            for p in paths_in(code):
                t = resolve(p, here, is_dir_mod, modules)
                if t is not None and modules[t] != f:
                    edges.add(modules[t])
            graph[f] = edges
            raw_lines = raw.split("\n")
            for m in re.finditer(r"(?m)^[ \t]*(?:pub(?:\([^)]*\))?\s+)?(?:const\s+)?(?:unsafe\s+)?(?:extern\s+\"[^\"]*\"\s+)?fn\s+(\w+)", code):
                open_idx = code.find("{", m.end())
                semi = code.find(";", m.end())
                if open_idx < 0 or (0 <= semi < open_idx):
                    continue
                end = match_brace(code, open_idx)
                first = code.count("\n", 0, m.start())
                last = code.count("\n", 0, end)
                n = last - first + 1
                prev = raw_lines[first - 1] if first > 0 else ""
                if n > max_fn and "layout: table" not in prev:
                    failed.append(f"fn {f}:{first + 1} {m.group(1)}: {n} lines (over {max_fn})")
        for comp in cycles(graph):
            detail = "; ".join(f"{a} -> {', '.join(sorted(b for b in graph[a] if b in comp))}" for a in comp)
            failed.append(f"import cycle among {len(comp)} files: {detail}")
    for line in failed:
        print(line)
    if failed:
        print(f"layout: {len(failed)} problem(s) in {len(files)} files")
        return 1
    print(f"layout: {len(files)} files, none over {max_file} lines, no fn over {max_fn} lines, no import cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
