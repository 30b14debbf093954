// SBP propagation: from annotations on some sources (weights, inputs, optimizer state) to an
// annotation on every node and the layout each node needs of each input, one mesh axis at a time.
// Greedy in topological order: each node takes its cheapest signature, the cost being the bytes
// its inputs' conversions move (a conversion already made for an earlier consumer is free).
// Unannotated params and state take the layout their first consumer wants. It decides; it does
// not rewrite the graph (sbp-lower.ts does).

import type { Graph } from '../../graphs/graph.js';
import { opDef } from '../../ops/registry.js';
import { sbpSignatures } from './sbp-signatures.js';
import {
  boxingCost, broadcast, canBox, localShape, ndSbpString, sbpEqual, sbpString, SbpError,
  type Mesh, type NdSbp, type Sbp,
} from './sbp.js';

/** Annotations by source name (an input, param or state); each has one entry per mesh axis. */
export type SbpAnnotations = ReadonlyMap<string, NdSbp>;

export interface SbpAssignment {
  readonly mesh: Mesh;
  /** each node's output layout */
  readonly sbp: readonly NdSbp[];
  /** the layout node i reads input j in: need[i][j] */
  readonly need: readonly (readonly NdSbp[])[];
  /** predicted bytes sent per device by the conversions, summed over mesh axes */
  readonly commBytes: number;
}

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/**
 * Chooses a layout for every node of `g` (global shapes `shapes`) on `mesh`, given `annotations`.
 * Graph inputs without one are broadcast; a variable's update value is converted to the
 * variable's layout.
 *
 * @example
 *   // Megatron MLP: W1 split on columns, W2 on rows — one all-reduce after the MLP
 *   propagateSbp(g, shapes, { shape: [2] }, new Map([['w1', [split(1)]], ['w2', [split(0)]]]));
 */
export function propagateSbp(g: Graph, shapes: readonly (readonly number[])[], mesh: Mesh, annotations: SbpAnnotations): SbpAssignment {
  for (const [name, s] of annotations) {
    if (s.length !== mesh.shape.length) throw new SbpError(`annotation of '${name}' ${ndSbpString(s)} has ${s.length} entries for a mesh of ${mesh.shape.length} axes`);
    if (!g.nodes.some((n) => n.name === name && (n.op === 'input' || n.op === 'param' || n.op === 'state'))) throw new SbpError(`annotation names '${name}', which is not an input, param or state of graph '${g.name}'`);
  }
  const perAxis = mesh.shape.map((n, a) => propagateAxis(g, shapes, n, a, annotations));
  const sbp = g.nodes.map((_, i) => perAxis.map((r) => r.sbp[i]!));
  const need = g.nodes.map((node, i) => node.inputs.map((_, j) => perAxis.map((r) => r.need[i]![j]!)));
  g.nodes.forEach((node, i) => {
    const check = (s: NdSbp, shape: readonly number[], what: string) => {
      try {
        localShape(shape, s, mesh);
      } catch (e) {
        throw new SbpError(`node ${i} (${node.op}) ${what}: ${(e as Error).message}`);
      }
    };
    check(sbp[i]!, shapes[i]!, 'output');
    node.inputs.forEach((j, k) => check(need[i]![k]!, shapes[j]!, `input ${k}`));
  });
  return { mesh, sbp, need, commBytes: perAxis.reduce((t, r) => t + r.cost, 0) };
}

interface AxisResult {
  sbp: Sbp[];
  need: Sbp[][];
  cost: number;
}

function propagateAxis(g: Graph, shapes: readonly (readonly number[])[], n: number, axis: number, ann: SbpAnnotations): AxisResult {
  const sbp: (Sbp | null)[] = g.nodes.map(() => null);
  const need: Sbp[][] = g.nodes.map(() => []);
  const boxed = new Set<string>();
  const bytes = (id: number) => 4 * numel(shapes[id]!);
  const hint = hints(g, shapes, axis, ann);
  let total = 0;
  // null: a source free to take whatever its first consumer wants
  const fixed = (id: number): Sbp | null => sbp[id]!;
  const cost = (id: number, to: Sbp): number => {
    const from = fixed(id);
    if (from === null) return to.kind === 'partial' ? Infinity : 0;
    if (boxed.has(`${id}:${sbpString(to)}`) || sbpEqual(from, to)) return 0;
    return canBox(from, to) ? boxingCost(from, to, bytes(id), n) : Infinity;
  };
  const take = (id: number, to: Sbp) => {
    if (fixed(id) === null) sbp[id] = to;
    else if (!sbpEqual(fixed(id)!, to) && !boxed.has(`${id}:${sbpString(to)}`)) {
      total += cost(id, to);
      boxed.add(`${id}:${sbpString(to)}`);
    }
  };
  for (const node of g.nodes) {
    const i = node.id;
    if (node.inputs.length === 0 && opDef(node.op).kind === 'source') {
      const a = node.name !== undefined ? ann.get(node.name)?.[axis] : undefined;
      const free = (node.op === 'param' || node.op === 'state') || (node.op === 'const' && !Array.isArray(node.attrs['data']));
      sbp[i] = a ?? (free ? null : broadcast);
      continue;
    }
    const sigs = sbpSignatures(node, node.inputs.map((j) => shapes[j]!), shapes[i]!, n);
    let best = sigs[0];
    let bestCost = Infinity;
    for (const s of sigs) {
      const c = s.ins.reduce((t, want, k) => t + cost(node.inputs[k]!, want), 0);
      const better = c < bestCost || (c === bestCost && best !== undefined && hint[i] !== undefined && sbpEqual(s.out, hint[i]!) && !sbpEqual(best.out, hint[i]!));
      if (better) [best, bestCost] = [s, c];
    }
    if (!best || bestCost === Infinity) throw new SbpError(`node ${i} (${node.op}) has no layout its inputs [${node.inputs.map((j) => (fixed(j) ? sbpString(fixed(j)!) : 'free')).join(', ')}] can be converted to on mesh axis ${axis}`);
    best.ins.forEach((want, k) => take(node.inputs[k]!, want));
    need[i] = [...best.ins];
    sbp[i] = best.out;
  }
  const resolved = sbp.map((s) => s ?? broadcast);
  for (const u of g.updates) {
    const v = resolved[u.value]!;
    if (sbp[u.target] === null) resolved[u.target] = sbp[u.target] = v.kind === 'partial' ? broadcast : v;
    const t = resolved[u.target]!;
    if (!canBox(v, t)) throw new SbpError(`update of node ${u.target} (${sbpString(t)}) from node ${u.value} (${sbpString(v)}) needs a conversion that does not exist`);
    if (!sbpEqual(v, t) && !boxed.has(`${u.value}:${sbpString(t)}`)) {
      total += boxingCost(v, t, bytes(u.value), n);
      boxed.add(`${u.value}:${sbpString(t)}`);
    }
  }
  return { sbp: resolved, need, cost: total };
}

/**
 * Layouts wanted downstream: an update's value wants its variable's annotated layout, and an
 * elementwise node passes its wish to same-shaped inputs. Used only to break cost ties (a
 * reduce-scatter into a sharded optimizer state over an all-reduce, ZeRO).
 */
function hints(g: Graph, shapes: readonly (readonly number[])[], axis: number, ann: SbpAnnotations): (Sbp | undefined)[] {
  const hint: (Sbp | undefined)[] = g.nodes.map(() => undefined);
  for (const u of g.updates) {
    const name = g.nodes[u.target]!.name;
    const a = name !== undefined ? ann.get(name)?.[axis] : undefined;
    if (a && a.kind === 'split') hint[u.value] ??= a;
  }
  for (let i = g.nodes.length - 1; i >= 0; i--) {
    const node = g.nodes[i]!;
    const h = hint[i];
    if (!h || opDef(node.op).kind !== 'elementwise') continue;
    for (const j of node.inputs) if (shapes[j]!.length === shapes[i]!.length && shapes[j]!.every((d, k) => d === shapes[i]![k])) hint[j] ??= h;
  }
  return hint;
}
