// The Checkmate MILP (Jain et al., MLSys 2020) for rematerialization under a byte budget, in its
// n-stage form: stage t evaluates node t for the first time, after recomputing any earlier
// nodes it wants, in id order. Builds the model as data and as CPLEX LP text, reads schedules
// out of solutions and turns a stage-form schedule into a starting solution. Solving is exact.ts.

import type { Adjacency, CostGraph } from './cost-graph.js';
import { totalCompute } from './schedule.js';

/**
 * Variables (all indices are node ids, stages t = 0..n-1):
 *   r_t_i  binary   node i < t is recomputed in stage t (node t itself always is)
 *   s_t_i  [0,1]    node i < t is resident when stage t starts (integral at any optimum)
 *   f_t_i_k [0,1]   i is released right after k (k = i or a successor of i) in stage t
 *   u_t_k  <= B     memory right after k is evaluated in stage t, before releases
 * s and f need no integrality: with r integral their largest feasible values are 0/1 and the
 * solver gains nothing from smaller ones (a fractional s can always be rounded down).
 * Memory: u_t_0 = sum_i m_i s_t_i + m_0 r_t_0; u_t_k = u_t_(k-1) + m_k r_t_k - sum_i m_i f_t_i_(k-1).
 * f_t_i_k <= r_t_k, <= 1 - s_(t+1)_i, <= 1 - r_t_j for successors j of i with k < j <= t.
 * Dependencies: r_t_j <= r_t_i + s_t_i for each edge i -> j, j <= t (r_t_t = 1).
 * Checkpoints persist only if present or computed: s_(t+1)_i <= s_t_i + r_t_i.
 */
export interface MilpRow {
  terms: [number, string][];
  sense: '<=' | '>=' | '=';
  rhs: number;
}

export interface Milp {
  rows: MilpRow[];
  objective: [number, string][];
  binaries: string[];
  /** Continuous columns with their upper bounds (lower bounds are 0). */
  continuous: [string, number][];
  /** Memory unit in bytes: coefficients are bytes / unit (rounded up when not exact). */
  unit: number;
  exactUnits: boolean;
  hasR: (t: number, i: number) => boolean;
  hasS: (t: number, i: number) => boolean;
  /** f columns with the columns bounding them: f <= r (or 1), f <= 1 - x for x in `off`. */
  frees: { name: string; on: string | null; off: string[] }[];
}

export function buildMilp(graph: CostGraph, budget: number, adj: Adjacency, tighten = true): Milp {
  const n = graph.nodes.length;
  const { preds, succs } = adj;
  const base = totalCompute(graph) || 1;
  const lastSucc = succs.map((s) => (s.length ? s[s.length - 1]! : -1));
  const hasR = (t: number, i: number) => i < t && succs[i]!.length > 0;
  // A value is worth keeping into stage t if a successor still runs for the first time at or
  // after t, or if a successor can be recomputed then (any successor that is not a sink).
  const feedsRecompute = succs.map((s) => s.some((j) => succs[j]!.length > 0));
  const hasS = (t: number, i: number) => t < n && i < t && (lastSucc[i]! >= t || feedsRecompute[i]!);
  const isSucc = succs.map((s) => new Set(s));

  const { unit, exactUnits, m, B } = memoryUnits(graph, budget);
  const r = (t: number, i: number) => `r${t}_${i}`;
  const s = (t: number, i: number) => `s${t}_${i}`;
  const u = (t: number, k: number) => `u${t}_${k}`;

  const rows: MilpRow[] = [];
  const continuous: [string, number][] = [];
  const binaries: string[] = [];
  const objective: [number, string][] = [];
  const frees: Milp['frees'] = [];
  const row = (terms: [number, string][], sense: MilpRow['sense'], rhs: number) => rows.push({ terms, sense, rhs });
  const rTerm = (coef: number, t: number, i: number): [number, string][] => (hasR(t, i) ? [[coef, r(t, i)]] : []);
  const sTerm = (coef: number, t: number, i: number): [number, string][] => (hasS(t, i) ? [[coef, s(t, i)]] : []);

  for (let t = 0; t < n; t++) {
    for (let i = 0; i < t; i++) {
      if (hasR(t, i)) {
        binaries.push(r(t, i));
        if (graph.nodes[i]!.compute > 0) objective.push([graph.nodes[i]!.compute / base, r(t, i)]);
      }
      if (hasS(t, i)) continuous.push([s(t, i), 1]);
    }
    // Dependencies.
    for (let j = 0; j <= t; j++) {
      if (j < t && !hasR(t, j)) continue;
      for (const i of preds[j]!) {
        if (j === t) row([...rTerm(1, t, i), ...sTerm(1, t, i)], '>=', 1);
        else row([[1, r(t, j)], ...rTerm(-1, t, i), ...sTerm(-1, t, i)], '<=', 0);
      }
    }
    // Checkpoints come from the previous stage (node t-1 itself always can be kept).
    for (let i = 0; i < t - 1; i++)
      if (hasS(t, i)) row([[1, s(t, i)], ...sTerm(-1, t - 1, i), ...rTerm(-1, t - 1, i)], '<=', 0);
    // Dominance cuts: a recomputation or checkpoint of i in stage t is only worth its cost or
    // memory if a successor of i is evaluated in stage t or i is carried into stage t+1.
    if (tighten)
      for (let i = 0; i < t; i++) {
        if (isSucc[i]!.has(t)) continue;
        const uses: [number, string][] = [];
        for (const j of succs[i]!) if (j < t) uses.push(...rTerm(-1, t, j));
        uses.push(...sTerm(-1, t + 1, i));
        if (hasR(t, i)) row([[1, r(t, i)], ...uses], '<=', 0);
        if (hasS(t, i)) row([[1, s(t, i)], ...uses], '<=', 0);
      }
    // Releases and memory.
    const freed: [number, string][][] = Array.from({ length: t + 1 }, () => []);
    for (let i = 0; i <= t; i++) {
      if (i < t && !hasR(t, i) && !hasS(t, i)) continue;
      for (const k of [i, ...succs[i]!]) {
        if (k > t) break;
        if (k === i && i < t && !hasR(t, i)) continue;
        if (k < t && !hasR(t, k)) continue;
        if (k < t && isSucc[i]!.has(t)) continue; // node t reads i later in this stage
        const fv = `f${t}_${i}_${k}`;
        continuous.push([fv, 1]);
        const off: string[] = [];
        if (k < t) row([[1, fv], [-1, r(t, k)]], '<=', 0);
        if (hasS(t + 1, i)) {
          row([[1, fv], [1, s(t + 1, i)]], '<=', 1);
          off.push(s(t + 1, i));
        }
        for (const j of succs[i]!)
          if (j > k && j < t && hasR(t, j)) {
            row([[1, fv], [1, r(t, j)]], '<=', 1);
            off.push(r(t, j));
          }
        frees.push({ name: fv, on: k < t ? r(t, k) : null, off });
        freed[k]!.push([m[i]!, fv]);
      }
    }
    for (let k = 0; k <= t; k++) {
      continuous.push([u(t, k), B]);
      const terms: [number, string][] = [[1, u(t, k)]];
      if (k === 0) for (let i = 0; i < t; i++) terms.push(...sTerm(-m[i]!, t, i));
      if (k > 0) terms.push([-1, u(t, k - 1)], ...freed[k - 1]!);
      if (k < t) terms.push(...rTerm(-m[k]!, t, k));
      row(terms, '=', k === t ? m[k]! : 0);
    }
  }
  return { rows, objective, binaries, continuous, unit, exactUnits, hasR, hasS, frees };
}

/** The model as CPLEX LP text, the input format HiGHS reads. */
export function milpToLp(milp: Milp): string {
  const expr = (terms: [number, string][]) => {
    const parts = terms.map(([c, v]) => `${c < 0 ? '-' : '+'} ${fmt(Math.abs(c))} ${v}`);
    const lines: string[] = [];
    for (let i = 0; i < parts.length; i += 12) lines.push(parts.slice(i, i + 12).join(' '));
    return lines.join('\n  ');
  };
  const list = (vs: string[]) => {
    const out: string[] = [];
    for (let i = 0; i < vs.length; i += 20) out.push(' ' + vs.slice(i, i + 20).join(' '));
    return out;
  };
  const anyCol = milp.binaries[0] ?? milp.continuous[0]?.[0];
  const objective = milp.objective.length ? expr(milp.objective) : anyCol ? `0 ${anyCol}` : '';
  return [
    'Minimize',
    ` obj: ${objective}`,
    'Subject To',
    ...milp.rows.map((rw, i) => ` c${i}: ${expr(rw.terms)} ${rw.sense} ${rw.rhs}`),
    'Bounds',
    ...milp.continuous.map(([v, ub]) => ` 0 <= ${v} <= ${ub}`),
    ...(milp.binaries.length ? ['Binary', ...list(milp.binaries)] : []),
    'End',
    '',
  ].join('\n');
}

/**
 * Integer memory units keep HiGHS's tolerances from admitting a plan a few bytes over budget.
 * With a common divisor that leaves budgets under 1e7 units the model is exact; otherwise a
 * unit of budget / 1e6 is used, sizes rounded up, which only ever makes the model stricter.
 */
function memoryUnits(graph: CostGraph, budget: number) {
  const bytes = graph.nodes.map((v) => v.bytes);
  let g = 0;
  const integral = bytes.every((b) => Number.isSafeInteger(b));
  if (integral) for (const b of bytes) g = gcd(g, b);
  if (integral && g > 0 && budget / g <= 1e7) {
    return { unit: g, exactUnits: true, m: bytes.map((b) => b / g), B: Math.floor(budget / g) };
  }
  const unit = budget / 1e6;
  return { unit, exactUnits: false, m: bytes.map((b) => Math.ceil(b / unit - 1e-9)), B: 1e6 };
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

function fmt(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toPrecision(12);
}

/** Evaluation sequence of a MILP solution: per stage, the recomputed nodes in id order, then t. */
export function sequenceFromSolution(n: number, value: (name: string) => number, hasR: Milp['hasR']): number[] {
  const seq: number[] = [];
  for (let t = 0; t < n; t++) {
    for (let i = 0; i < t; i++) if (hasR(t, i) && value(`r${t}_${i}`) > 0.5) seq.push(i);
    seq.push(t);
  }
  return seq;
}

/**
 * Values of every MILP column for a stage-form sequence (each stage: distinct earlier nodes in
 * increasing id order, then the stage's node), or null when the sequence is not in that form or
 * the values break a row (the model's memory accounting is never below the simulated one, so
 * this only happens for sequences over budget).
 */
export function stageStart(graph: CostGraph, seq: readonly number[], milp: Milp, adj: Adjacency): Map<string, number> | null {
  const n = graph.nodes.length;
  const values = new Map<string, number>();
  const stageOf: number[] = [];
  let t = 0;
  let prev = -1;
  for (const v of seq) {
    if (t >= n) return null;
    stageOf.push(t);
    if (v === t) {
      t++;
      prev = -1;
    } else if (v < t && v > prev && milp.hasR(t, v)) {
      values.set(`r${t}_${v}`, 1);
      prev = v;
    } else return null;
  }
  if (t !== n) return null;
  // A copy made in stage a and last read in stage b is resident at the start of stages a+1..b.
  const copyAt = new Int32Array(n).fill(-1);
  const lastReadStage = seq.map((_, j) => stageOf[j]!);
  seq.forEach((v, j) => {
    for (const p of adj.preds[v]!) lastReadStage[copyAt[p]!] = stageOf[j]!;
    copyAt[v] = j;
  });
  for (let j = 0; j < seq.length; j++)
    for (let st = stageOf[j]! + 1; st <= lastReadStage[j]!; st++) {
      if (!milp.hasS(st, seq[j]!)) return null;
      values.set(`s${st}_${seq[j]}`, 1);
    }
  const val = (name: string) => values.get(name) ?? 0;
  for (const b of milp.binaries) values.set(b, val(b));
  for (const [c] of milp.continuous) if (c[0] === 's') values.set(c, val(c));
  for (const fr of milp.frees) values.set(fr.name, Math.min(fr.on ? val(fr.on) : 1, ...fr.off.map((x) => 1 - val(x))));
  // Memory rows define each u from columns already known (they are emitted in order).
  for (const rw of milp.rows) {
    const [c0, v0] = rw.terms[0]!;
    if (rw.sense === '=' && v0[0] === 'u' && c0 === 1) {
      const rest = rw.terms.slice(1).reduce((acc, [c, v]) => acc + c * val(v), 0);
      values.set(v0, rw.rhs - rest);
    }
  }
  const ub = new Map(milp.continuous);
  for (const [c, bound] of ub) if (val(c) > bound + 1e-9) return null;
  for (const rw of milp.rows) {
    const lhs = rw.terms.reduce((acc, [c, v]) => acc + c * val(v), 0);
    if (rw.sense === '<=' ? lhs > rw.rhs + 1e-9 : rw.sense === '>=' ? lhs < rw.rhs - 1e-9 : Math.abs(lhs - rw.rhs) > 1e-6) return null;
  }
  return values;
}

