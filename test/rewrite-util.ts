// Helpers shared by the rewrite tests: run a graph before and after a rewrite on the reference
// backend and compare every output within float tolerance (NaN equals NaN, infinities exactly).

import { expect } from 'vitest';
import type { Graph } from '../graphs/graph.js';
import type { HostTensor } from '../runtime/tensor.js';
import { compile } from '../runtime/executor.js';

export function runReference(g: Graph, feeds: Record<string, HostTensor>, variables: Record<string, HostTensor> = {}): Record<string, HostTensor> {
  const exe = compile(g, { backend: 'reference' });
  exe.setVariables(variables);
  return exe.runSync(feeds);
}

export function expectSameOutputs(before: Graph, after: Graph, feeds: Record<string, HostTensor>, variables: Record<string, HostTensor> = {}, rtol = 1e-5, atol = 1e-6): void {
  expect(Object.keys(after.outputs).sort()).toEqual(Object.keys(before.outputs).sort());
  const want = runReference(before, feeds, variables);
  const got = runReference(after, feeds, variables);
  for (const [name, w] of Object.entries(want)) {
    const g = got[name]!;
    expect(g.shape, `output '${name}' shape`).toEqual(w.shape);
    expect(g.dtype, `output '${name}' dtype`).toBe(w.dtype);
    for (let i = 0; i < w.data.length; i++) {
      const a = g.data[i]!, b = w.data[i]!;
      if (a === b || (Number.isNaN(a) && Number.isNaN(b))) continue;
      if (!(Math.abs(a - b) <= rtol * Math.max(Math.abs(a), Math.abs(b)) + atol)) {
        expect.fail(`output '${name}' [${w.shape.join(', ')}] element ${i}: ${a} after the rewrite, ${b} before`);
      }
    }
  }
}

/** Names of inputs, params and state, and the outputs, of a graph. */
export function interfaceOf(g: Graph): { sources: string[]; outputs: string[] } {
  return {
    sources: g.nodes.filter((n) => n.op === 'input' || n.op === 'param' || n.op === 'state').map((n) => `${n.op}:${n.name}`).sort(),
    outputs: Object.keys(g.outputs).sort(),
  };
}
