// Graphviz DOT export: sources as boxes, ops as ellipses labelled with op and output type,
// outputs and updates marked. Optionally clusters nodes by the kernel that computes them, so a
// fused plan can be seen, and marks the nodes a rewrite made (with the rule's name). Rendering to
// SVG is Graphviz's job (`dot -Tsvg`).

import type { Graph } from './graph.js';
import { typeToString } from './types.js';

export interface DotOptions {
  /** kernel name per node id (e.g. from a plan's steps) to draw fusion groups */
  readonly groups?: ReadonlyMap<number, string>;
  /** nodes to mark, with a label (e.g. `optimizeGraph(g).highlight`: the rule that made each) */
  readonly highlight?: ReadonlyMap<number, string>;
}

const esc = (s: string) => s.replace(/\\/g, '\\\\').replace(/"/g, '\\"');

export function toDot(g: Graph, opts: DotOptions = {}): string {
  const lines = [`digraph "${esc(g.name)}" {`, '  rankdir=TB;', '  node [fontname="Helvetica", fontsize=10];'];
  const outputs = new Map(Object.entries(g.outputs).map(([k, v]) => [v, k]));
  const updated = new Set(g.updates.map((u) => u.target));
  const nodeLine = (id: number): string => {
    const n = g.nodes[id]!;
    const source = n.op === 'input' || n.op === 'param' || n.op === 'state' || n.op === 'const';
    const mark = opts.highlight?.get(id);
    const parts = [n.name ? `${n.op} ${n.name}` : n.op, typeToString(n), ...(outputs.has(id) ? [`→ ${outputs.get(id)}`] : []), ...(mark !== undefined ? [`[${mark}]`] : [])];
    const label = parts.map(esc).join('\\n');
    const style = source ? `shape=box, style="rounded,filled", fillcolor="${n.op === 'param' || updated.has(id) ? '#fde9c8' : '#e3eefc'}"` : 'shape=ellipse';
    const marked = mark !== undefined ? ', color="#d62728", fontcolor="#d62728", penwidth=2' : outputs.has(id) ? ', penwidth=2' : '';
    return `n${id} [label="${label}", ${style}${marked}];`;
  };
  const clusters = new Map<string, number[]>();
  for (const n of g.nodes) {
    const grp = opts.groups?.get(n.id);
    if (grp) clusters.set(grp, [...(clusters.get(grp) ?? []), n.id]);
    else lines.push(`  ${nodeLine(n.id)}`);
  }
  let c = 0;
  for (const [name, ids] of clusters) {
    lines.push(`  subgraph cluster_${c++} {`, `    label="${esc(name)}"; style=dashed; color="#888888";`);
    for (const id of ids) lines.push(`    ${nodeLine(id)}`);
    lines.push('  }');
  }
  for (const n of g.nodes) for (const i of n.inputs) lines.push(`  n${i} -> n${n.id};`);
  for (const u of g.updates) lines.push(`  n${u.value} -> n${u.target} [style=dotted, constraint=false, label="update"];`);
  lines.push('}');
  return lines.join('\n');
}
