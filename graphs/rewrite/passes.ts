// The standard passes and `optimizeGraph`, which runs passes in order, each a rule set applied
// by the one engine to a fixed point (or searched under a cost model). The default set lowers
// n-ary einsums along good contraction orders, then simplifies: CSE, constant folding and
// algebraic identities together, to a fixed point.

import type { Graph } from '../graph.js';
import { rewriteGraph, rewriteHighlights, searchRewrite, type RewriteResult, type Rule } from './engine.js';
import { costFunction, type CostModel, type SymbolicSizes } from './cost.js';
import { cseRules } from './cse.js';
import { foldRules } from './fold.js';
import { algebraRules } from './algebra.js';
import { einsumRules } from './contraction.js';

export interface Pass {
  readonly name: string;
  readonly rules: readonly Rule[];
  /** search over the rules under a cost model instead of applying them to a fixed point */
  readonly search?: { readonly cost: CostModel; readonly dims?: SymbolicSizes; readonly beamWidth?: number; readonly depth?: number };
  /** the most applications in a fixed-point pass (default 10000) */
  readonly maxSteps?: number;
}

export const simplifyRules: readonly Rule[] = [...cseRules, ...foldRules, ...algebraRules];

export const defaultPasses: readonly Pass[] = [
  { name: 'contract', rules: einsumRules },
  { name: 'simplify', rules: simplifyRules },
];

export interface OptimizeOptions {
  /** the passes to run, in order (default `defaultPasses`) */
  readonly passes?: readonly Pass[];
  /** extra rules, run to a fixed point after the passes */
  readonly rules?: readonly Rule[];
}

export interface OptimizeResult {
  readonly graph: Graph;
  /** each pass's rewrite, in order (ids in a pass's log are that pass's working ids) */
  readonly passes: readonly { readonly name: string; readonly result: RewriteResult }[];
  /** nodes of `graph` that some rule made or put in place, with the rule: `toDot(graph, { highlight })` */
  readonly highlight: ReadonlyMap<number, string>;
}

export function runPass(g: Graph, pass: Pass): RewriteResult {
  if (!pass.search) return rewriteGraph(g, pass.rules, { maxSteps: pass.maxSteps ?? 10_000 });
  const { cost, dims, ...rest } = pass.search;
  return searchRewrite(g, pass.rules, { cost: costFunction(cost, dims), ...rest });
}

/**
 * Rewrite a graph with passes; inputs, params, state, output names and updates are kept.
 *
 * ```ts
 * const { graph, passes } = optimizeGraph(g);
 * for (const p of passes) for (const r of p.result.log) console.log(p.name, r.rule, r.note ?? '');
 * ```
 */
export function optimizeGraph(g: Graph, opts: OptimizeOptions = {}): OptimizeResult {
  const passes = [...(opts.passes ?? defaultPasses), ...(opts.rules?.length ? [{ name: 'rules', rules: opts.rules }] : [])];
  const done: { name: string; result: RewriteResult }[] = [];
  let highlight = new Map<number, string>();
  let cur = g;
  for (const pass of passes) {
    const result = runPass(cur, pass);
    const next = new Map<number, string>();
    for (const [id, r] of highlight) {
      const now = result.ids.get(id);
      if (now !== undefined) next.set(now, r);
    }
    for (const [id, r] of rewriteHighlights(result)) next.set(id, r);
    highlight = next;
    done.push({ name: pass.name, result });
    cur = result.graph;
  }
  return { graph: cur, passes: done, highlight };
}
