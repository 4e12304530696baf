#!/usr/bin/env python3
"""Import-cycle check of one crate's modules (the project rule: no import loop inside a
crate; ARCHITECTURE.md "Modules and their imports"). Run by scripts/module-cycles for
every crate; exits 1 when a loop is found.

Test code is not counted (tests may reach anywhere): `tests.rs` files and
`#[cfg(test)]` inline modules.

Nodes: one per module file (lib.rs = `crate`, a.rs or a/mod.rs = `a`, a/b.rs = `a::b`;
inline `mod x { }` blocks belong to their file). Edges: every `crate::`, `super::`,
`self::` path and every `use` of a child module, in code (comments and strings
stripped), resolved to the longest module prefix. Edges to the crate root (lib.rs:
`crate::background_priority`) are listed but not counted as loops (lib.rs declares
every module). `mod x;` declarations are not edges.
"""
import os, re, sys
from collections import defaultdict

src = sys.argv[1]
quiet = '-q' in sys.argv
mods = {}
for dp, _, fs in os.walk(src):
    for f in fs:
        if not f.endswith('.rs') or f == 'tests.rs':
            continue
        p = os.path.join(dp, f)
        rel = os.path.relpath(p, src)[:-3].split(os.sep)
        if rel == ['lib'] or rel == ['main']:
            name = 'crate'
        elif rel[-1] == 'mod':
            name = '::'.join(rel[:-1])
        else:
            name = '::'.join(rel)
        mods[name] = p

def strip(text):
    text = re.sub(r'//[^\n]*', '', text)
    text = re.sub(r'/\*.*?\*/', '', text, flags=re.S)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    # drop `#[cfg(test)] mod x { ... }` blocks
    while True:
        m = re.search(r'#\[cfg\(test\)\]\s*mod\s+\w+\s*\{', text)
        if not m:
            return text
        depth, i = 1, m.end()
        while depth and i < len(text):
            depth += text[i] == '{'
            depth -= text[i] == '}'
            i += 1
        text = text[:m.start()] + text[i:]

def expand(tree):
    """`a::{b, c::{d}}` -> ['a::b', 'a::c::d']"""
    tree = re.sub(r'\s+as\s+\w+', '', tree)
    tree = re.sub(r'\s+', '', tree)
    def rec(prefix, s):
        i = s.find('{')
        if i < 0:
            return [prefix + s]
        head, body = s[:i], s[i + 1:s.rfind('}')]
        parts, depth, cur = [], 0, ''
        for ch in body:
            if ch == ',' and depth == 0:
                parts.append(cur); cur = ''
                continue
            depth += ch == '{'
            depth -= ch == '}'
            cur += ch
        parts.append(cur)
        out = []
        for p in parts:
            if p:
                out += rec(prefix + head, p)
        return out
    return rec('', tree)

def resolve(cur, path):
    segs = [s for s in path.split('::') if s]
    if not segs:
        return None
    if segs[0] == 'crate':
        base, segs = [], segs[1:]
    elif segs[0] == 'super':
        base = cur.split('::') if cur != 'crate' else []
        while segs and segs[0] == 'super':
            base = base[:-1]; segs = segs[1:]
    elif segs[0] == 'self':
        base, segs = (cur.split('::') if cur != 'crate' else []), segs[1:]
    else:
        base = cur.split('::') if cur != 'crate' else []
        if '::'.join(base + segs[:1]) not in mods:
            return None  # external crate or std
    best = '::'.join(base) or 'crate'
    for k in range(1, len(segs) + 1):
        cand = '::'.join(base + segs[:k])
        if cand in mods:
            best = cand
        else:
            break
    return best

edges = defaultdict(set)
for name, p in mods.items():
    text = strip(open(p).read())
    # inline `mod x { ... }` blocks: paths inside are one level (per block) deeper
    spans = []
    for m in re.finditer(r'\bmod\s+\w+\s*\{', text):
        depth, i = 1, m.end()
        while depth and i < len(text):
            depth += text[i] == '{'
            depth -= text[i] == '}'
            i += 1
        spans.append((m.start(), i))
    def level(pos):
        return sum(a <= pos < b for a, b in spans)
    paths = []
    for m in re.finditer(r'\buse\s+([^;]+);', text):
        paths += [(m.start(), x) for x in expand(m.group(1))]
    for m in re.finditer(r'\b(?:crate|super|self)(?:::\w+)+', text):
        if not re.search(r'\buse\s+[^;]*$', text[max(0, m.start() - 300):m.start()]):
            paths.append((m.start(), m.group(0)))
    for pos, path in paths:
        lv = level(pos)
        segs = path.split('::')
        if segs[0] == 'super':
            # climb out of inline modules first
            k = 0
            while k < lv and segs and segs[0] == 'super':
                segs = segs[1:]; k += 1
            if k:
                path = '::'.join(segs if segs and segs[0] == 'super' else ['self'] + segs)
        elif segs[0] not in ('crate',) and lv:
            continue  # relative to an inline module: stays inside the file
        t = resolve(name, path)
        if t and t != name:
            edges[name].add(t)

# cycles among non-root nodes (Tarjan SCC)
nodes = sorted(n for n in mods if n != 'crate')
index, low, stack, on, sccs, c = {}, {}, [], set(), [], [0]
def sc(v):
    index[v] = low[v] = c[0]; c[0] += 1; stack.append(v); on.add(v)
    for w in edges[v]:
        if w == 'crate':
            continue
        if w not in index:
            sc(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v:
                break
        if len(comp) > 1:
            sccs.append(sorted(comp))
sys.setrecursionlimit(10000)
for v in nodes:
    if v not in index:
        sc(v)
for n in ([] if quiet else ['crate'] + nodes):
    print(f'{n:18} -> {", ".join(sorted(edges[n])) or "-"}')
# a child importing its parent module is a loop by the project's rule (parent re-exports it)
child_to_parent = [(n, t) for n in nodes for t in edges[n] if t != 'crate' and n.startswith(t + '::')]
bad = bool(sccs or child_to_parent)
if quiet and not bad:
    sys.exit(0)
print(src) if quiet else print()
print('cycles:', sccs if sccs else 'none')
print('children importing their parent:', child_to_parent if child_to_parent else 'none')
sys.exit(1 if bad else 0)
