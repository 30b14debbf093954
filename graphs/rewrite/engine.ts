// The rewrite engine: one loop that applies rules (pattern, guard, replacement built with the
// builder) to a graph, either to a fixed point or by a beam search under a cost model. Every
// application is logged with its rule, the nodes it matched and made, and its immer patches.
// It knows no op by name: what to rewrite is the rules' business. Inputs, params and state are
// never rewritten; outputs and updates follow their nodes' replacements.
//
// While rules run, node ids are stable: new nodes are appended and readers are redirected, so the
// working graph may list a node before its inputs and keep dead nodes. Each record's patches take
// the working graph before it to the one after (the first starts from the input graph). At the
// end the working graph is compacted (dead nodes dropped, renumbered in topological order) and
// `ids` maps working ids to the result's ids.

import { castDraft, enablePatches, freeze, produceWithPatches, type Patch } from 'immer';
import type { Graph, Node, Update } from '../graph.js';
import { Builder } from '../builder.js';
import { DTypeError, GraphError, ShapeError } from '../errors.js';
import { dict } from '../dict.js';
import type { Tensor } from '../types.js';
import { match, type Match, type Pattern } from './pattern.js';

enablePatches();

/** What a rule sees besides its match. */
export interface RuleContext {
  /**
   * The id of the first node, in this sweep's topological order, with the same structure as `n`
   * (op, inputs, attributes, type; inputs in any order for commutative ops); `n.id` when `n` is
   * the first. Inputs, params and state are only ever equal to themselves.
   */
  canonical(n: Node): number;
  /** attach a remark to this application's record (e.g. a cost before and after) */
  note(text: string): void;
}

export interface Rule {
  readonly name: string;
  readonly pattern: Pattern;
  /** further conditions on the match; the builder is only made once this holds */
  readonly guard?: (m: Match, ctx: RuleContext) => boolean;
  /** the tensor that replaces the match's root (an existing node or new ones), or null to decline */
  readonly rewrite: (b: Builder, m: Match, ctx: RuleContext) => Tensor | null;
}

/** A rule from its parts. */
export function rule(name: string, pattern: Pattern, rewrite: Rule['rewrite'], guard?: Rule['guard']): Rule {
  return { name, pattern, rewrite, ...(guard ? { guard } : {}) };
}

/** One application of one rule. Ids are working ids (see the module header). */
export interface RewriteRecord {
  readonly rule: string;
  /** the node replaced */
  readonly root: number;
  /** the node that replaced it */
  readonly replacement: number;
  /** the nodes the pattern covered, root first */
  readonly matched: readonly number[];
  /** the nodes the replacement made */
  readonly created: readonly number[];
  readonly note?: string;
  readonly patches: readonly Patch[];
  readonly inversePatches: readonly Patch[];
}

export interface RewriteResult {
  readonly graph: Graph;
  readonly log: readonly RewriteRecord[];
  /** working id -> id in `graph` (absent: the node is gone) */
  readonly ids: ReadonlyMap<number, number>;
  /** false when the step limit stopped the rewrite before a fixed point */
  readonly converged: boolean;
}

export interface FixpointOptions {
  /** the most rule applications (default 10000): the rewrite always terminates */
  readonly maxSteps?: number;
}

const KEPT_SOURCES = new Set(['input', 'param', 'state']);
const COMMUTATIVE = new Set(['add', 'mul', 'max', 'min', 'eq', 'ne', 'and', 'or']);

/** Apply `rules` until none applies (or `maxSteps` applications have been made). */
export function rewriteGraph(g: Graph, rules: readonly Rule[], opts: FixpointOptions = {}): RewriteResult {
  const maxSteps = opts.maxSteps ?? 10_000;
  const w = new Working(g);
  const byOp = indexRules(rules);
  let converged = false;
  while (w.log.length < maxSteps) {
    let changed = false;
    const ctx = w.context();
    for (const id of w.topoOrder()) {
      if (w.log.length >= maxSteps) break;
      if (!w.isLive(id)) continue;
      if (w.tryRules(id, byOp(w.graph.nodes[id]!.op), ctx.fresh())) changed = true;
    }
    if (!changed) {
      converged = true;
      break;
    }
  }
  return w.finish(converged);
}

export interface SearchOptions {
  /** what to minimize over the rewritten graphs */
  readonly cost: (g: Graph) => number;
  /** graphs kept per level (default 4) */
  readonly beamWidth?: number;
  /** the most applications along one line of search (default 8) */
  readonly depth?: number;
  /** the most applications tried from one graph (default 64) */
  readonly maxChildren?: number;
}

/**
 * Beam search over rule applications: from each kept graph try every application, keep the
 * `beamWidth` cheapest results, repeat `depth` times; return the cheapest graph seen (the input
 * when nothing beats it), with the applications that led to it.
 */
export function searchRewrite(g: Graph, rules: readonly Rule[], opts: SearchOptions): RewriteResult {
  const { cost, beamWidth = 4, depth = 8, maxChildren = 64 } = opts;
  const byOp = indexRules(rules);
  const start = new Working(g);
  let best = { w: start, cost: cost(start.compact().graph) };
  let beam = [best];
  const seen = new Set([structureKey(start.compact().graph)]);
  for (let level = 0; level < depth && beam.length; level++) {
    const children: { w: Working; cost: number }[] = [];
    for (const { w } of beam) {
      const ctx = w.context();
      let tried = 0;
      for (const id of w.topoOrder()) {
        if (!w.isLive(id)) continue;
        for (const r of byOp(w.graph.nodes[id]!.op)) {
          if (tried >= maxChildren) break;
          const child = w.clone();
          if (!child.tryRules(id, [r], ctx.fresh())) continue;
          tried++;
          const compacted = child.compact().graph;
          const key = structureKey(compacted);
          if (seen.has(key)) continue;
          seen.add(key);
          children.push({ w: child, cost: cost(compacted) });
        }
      }
    }
    children.sort((a, b) => a.cost - b.cost || a.w.log.length - b.w.log.length);
    beam = children.slice(0, beamWidth);
    if (beam[0] && beam[0].cost < best.cost) best = beam[0];
  }
  return best.w.finish(true);
}

function indexRules(rules: readonly Rule[]): (op: string) => readonly Rule[] {
  const cache = new Map<string, Rule[]>();
  return (op) => {
    let rs = cache.get(op);
    if (!rs) {
      rs = rules.filter((r) => r.pattern.op === undefined || (typeof r.pattern.op === 'string' ? r.pattern.op === op : r.pattern.op.includes(op)));
      cache.set(op, rs);
    }
    return rs;
  };
}

/** Everything that decides a graph's meaning (not sites), for telling graphs apart. */
function structureKey(g: Graph): string {
  return JSON.stringify([g.nodes.map((n) => [n.op, n.inputs, n.attrs, n.name ?? null]), g.outputs, g.updates]);
}

/** A stable text of a node's structure; see RuleContext.canonical. */
function nodeKey(n: Node): string {
  const ins = COMMUTATIVE.has(n.op) ? [...n.inputs].sort((a, b) => a - b) : n.inputs;
  return JSON.stringify([n.op, ins, sortedAttrs(n.attrs), n.dtype, n.shape]);
}

function sortedAttrs(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortedAttrs);
  if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortedAttrs((v as Record<string, unknown>)[k])]));
  return v;
}

/** The working graph of one rewrite: the graph so far, who reads whom, and the log. */
class Working {
  graph: Graph;
  log: RewriteRecord[];
  private readers: Map<number, Set<number>>;

  constructor(g: Graph, log: RewriteRecord[] = []) {
    this.graph = g;
    this.log = log;
    this.readers = new Map();
    for (const n of g.nodes) for (const i of n.inputs) this.readersOf(i).add(n.id);
  }

  clone(): Working {
    return new Working(this.graph, [...this.log]);
  }

  private readersOf(id: number): Set<number> {
    let s = this.readers.get(id);
    if (!s) this.readers.set(id, (s = new Set()));
    return s;
  }

  /** the nodes every run needs: outputs, update targets and values, inputs, params and state */
  roots(): number[] {
    const g = this.graph;
    const r = [...Object.values(g.outputs), ...g.updates.flatMap((u) => [u.target, u.value])];
    for (const n of g.nodes) if (KEPT_SOURCES.has(n.op)) r.push(n.id);
    return r;
  }

  isLive(id: number): boolean {
    if ((this.readers.get(id)?.size ?? 0) > 0) return true;
    const g = this.graph;
    return Object.values(g.outputs).includes(id) || g.updates.some((u) => u.value === id || u.target === id);
  }

  /** Live node ids, inputs before readers (depth-first from the roots). */
  topoOrder(): number[] {
    const g = this.graph;
    const state = new Uint8Array(g.nodes.length);
    const order: number[] = [];
    for (const root of this.roots()) {
      if (state[root]) continue;
      const stack: [number, number][] = [[root, 0]];
      state[root] = 1;
      while (stack.length) {
        const top = stack[stack.length - 1]!;
        const ins = g.nodes[top[0]]!.inputs;
        if (top[1] < ins.length) {
          const next = ins[top[1]++]!;
          if (!state[next]) {
            state[next] = 1;
            stack.push([next, 0]);
          }
        } else {
          stack.pop();
          order.push(top[0]);
        }
      }
    }
    return order;
  }

  /** A context factory for one sweep: the structure table lives as long as the sweep. */
  context(): { fresh(): RuleContext & { notes: string[] } } {
    const table = new Map<string, number>();
    return {
      fresh: () => {
        const notes: string[] = [];
        return {
          notes,
          note: (t) => void notes.push(t),
          canonical: (n) => {
            if (KEPT_SOURCES.has(n.op)) return n.id;
            const key = nodeKey(n);
            const known = table.get(key);
            if (known !== undefined && known !== n.id && this.isLive(known)) return known;
            table.set(key, n.id);
            return n.id;
          },
        };
      },
    };
  }

  /** Try rules at node `id` in order; apply the first that rewrites it. */
  tryRules(id: number, rules: readonly Rule[], ctx: RuleContext & { notes: string[] }): boolean {
    const n = this.graph.nodes[id]!;
    if (KEPT_SOURCES.has(n.op)) return false;
    for (const r of rules) {
      const m = match(this.graph, r.pattern, id);
      if (!m || (r.guard && !r.guard(m, ctx))) continue;
      const b = new Builder(this.graph);
      b.site = n.site ?? undefined;
      let t: Tensor | null;
      try {
        t = r.rewrite(b, m, ctx);
      } catch (e) {
        // the builder refused the replacement's shapes: the rule does not apply here
        if (e instanceof ShapeError || e instanceof DTypeError) continue;
        throw e;
      }
      if (!t || t.id === id) continue;
      this.apply(r.name, m, t, b.newNodes, ctx.notes.join('; '));
      return true;
    }
    return false;
  }

  private apply(ruleName: string, m: Match, t: Tensor, made: readonly Node[], note: string): void {
    const root = m.root;
    const byId = (i: number) => this.graph.nodes[i] ?? made.find((x) => x.id === i);
    const rep = byId(t.id);
    if (!rep || rep.dtype !== root.dtype || rep.shape.length !== root.shape.length || rep.shape.some((d, i) => d !== root.shape[i])) {
      throw new GraphError(`rewrite rule '${ruleName}' replaced node ${root.id} (${root.op}: ${root.dtype}[${root.shape.join(', ')}]) by a value of another type`);
    }
    // the replacement must not read the node it replaces (that would make a cycle)
    const seen = new Set<number>();
    const stack = [t.id];
    while (stack.length) {
      const i = stack.pop()!;
      if (i === root.id) throw new GraphError(`rewrite rule '${ruleName}' replaced node ${root.id} (${root.op}) by a value that reads it`);
      if (seen.has(i)) continue;
      seen.add(i);
      stack.push(...byId(i)!.inputs);
    }
    const readers = [...(this.readers.get(root.id) ?? [])];
    const [next, patches, inversePatches] = produceWithPatches(this.graph, (d) => {
      d.nodes.push(...castDraft(made));
      for (const c of readers) d.nodes[c]!.inputs = d.nodes[c]!.inputs.map((i) => (i === root.id ? t.id : i));
      for (const k of Object.keys(d.outputs)) if (d.outputs[k] === root.id) d.outputs[k] = t.id;
      for (const u of d.updates) if (u.value === root.id) u.value = t.id;
    });
    this.graph = next;
    for (const x of made) for (const i of x.inputs) this.readersOf(i).add(x.id);
    for (const c of readers) this.readersOf(t.id).add(c);
    this.readers.delete(root.id);
    for (const i of root.inputs) this.readers.get(i)?.delete(root.id);
    this.log.push({
      rule: ruleName, root: root.id, replacement: t.id, matched: m.covered, created: made.map((x) => x.id),
      ...(note ? { note } : {}), patches, inversePatches,
    });
  }

  /** Drop dead nodes and renumber in topological order (original order kept where it can be). */
  compact(): { graph: Graph; ids: Map<number, number> } {
    const g = this.graph;
    const live = new Set(this.topoOrder());
    const indeg = new Map<number, number>();
    const readers = new Map<number, number[]>();
    for (const id of live) {
      const ins = [...new Set(g.nodes[id]!.inputs)];
      indeg.set(id, ins.length);
      for (const i of ins) readers.set(i, [...(readers.get(i) ?? []), id]);
    }
    const heap = new MinHeap();
    for (const [id, d] of indeg) if (d === 0) heap.push(id);
    const ids = new Map<number, number>();
    const nodes: Node[] = [];
    while (heap.size) {
      const id = heap.pop();
      ids.set(id, nodes.length);
      nodes.push(g.nodes[id]!);
      for (const r of readers.get(id) ?? []) {
        const d = indeg.get(r)! - 1;
        indeg.set(r, d);
        if (d === 0) heap.push(r);
      }
    }
    const same = nodes.length === g.nodes.length && nodes.every((n, i) => n.id === i);
    if (same) return { graph: g, ids };
    const renumbered = nodes.map((n) => ({ ...n, id: ids.get(n.id)!, inputs: n.inputs.map((i) => ids.get(i)!) }));
    const outputs = dict(Object.entries(g.outputs).map(([k, v]) => [k, ids.get(v)!] as const));
    const updates: Update[] = g.updates.map((u) => ({ target: ids.get(u.target)!, value: ids.get(u.value)! }));
    const out: Graph = { name: g.name, nodes: renumbered, outputs, updates };
    return { graph: freeze(out, true), ids };
  }

  finish(converged: boolean): RewriteResult {
    const { graph, ids } = this.compact();
    return { graph, log: this.log, ids, converged };
  }
}

class MinHeap {
  private a: number[] = [];
  get size(): number {
    return this.a.length;
  }
  push(x: number): void {
    const a = this.a;
    a.push(x);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p]! <= a[i]!) break;
      [a[p], a[i]] = [a[i]!, a[p]!];
      i = p;
    }
  }
  pop(): number {
    const a = this.a;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < a.length && a[l]! < a[m]!) m = l;
        if (r < a.length && a[r]! < a[m]!) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i]!, a[m]!];
        i = m;
      }
    }
    return top;
  }
}

/**
 * The nodes of `result.graph` that a rewrite made or put in place of another, with the rule that
 * did it (the last one, when several touched a node): what `toDot`'s `highlight` draws.
 */
export function rewriteHighlights(result: RewriteResult): Map<number, string> {
  const out = new Map<number, string>();
  for (const r of result.log) {
    for (const id of [...r.created, r.replacement]) {
      const now = result.ids.get(id);
      if (now !== undefined) out.set(now, r.rule);
    }
  }
  return out;
}
