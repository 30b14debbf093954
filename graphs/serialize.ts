// A stable JSON form for graphs that round-trips exactly: numbers that JSON cannot carry
// (NaN, ±Infinity, -0) are tagged, key order is fixed, and parsing validates structure and
// that every op is known. This is the format graphs are stored and exchanged in.

import { freeze } from 'immer';
import type { AttrValue, Graph, Node } from './graph.js';
import { validateGraph } from './graph.js';
import { GraphError } from './errors.js';
import { hasOp, opDef } from '../ops/registry.js';
import { DTYPES, type DType } from './types.js';

export const FORMAT = 'rheo.graph/1';

function encodeValue(v: AttrValue): unknown {
  if (typeof v === 'number') {
    if (Number.isNaN(v)) return { $num: 'NaN' };
    if (v === Infinity) return { $num: 'Infinity' };
    if (v === -Infinity) return { $num: '-Infinity' };
    if (Object.is(v, -0)) return { $num: '-0' };
    return v;
  }
  if (Array.isArray(v)) return v.map(encodeValue);
  if (v && typeof v === 'object') {
    const o: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) o[k] = encodeValue((v as Record<string, AttrValue>)[k]!);
    return o;
  }
  return v;
}

function decodeValue(v: unknown): AttrValue {
  if (Array.isArray(v)) return v.map(decodeValue);
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if (Object.keys(o).length === 1 && typeof o['$num'] === 'string') {
      const s = o['$num'];
      return s === '-0' ? -0 : Number(s);
    }
    const out: Record<string, AttrValue> = {};
    for (const k of Object.keys(o)) out[k] = decodeValue(o[k]);
    return out;
  }
  return v as AttrValue;
}

export function toJSON(g: Graph): string {
  const nodes = g.nodes.map((n) => ({
    id: n.id,
    op: n.op,
    inputs: n.inputs,
    attrs: encodeValue(n.attrs as AttrValue),
    dtype: n.dtype,
    shape: n.shape,
    ...(n.name !== undefined ? { name: n.name } : {}),
    ...(n.site !== undefined ? { site: n.site } : {}),
  }));
  return JSON.stringify({ format: FORMAT, name: g.name, nodes, outputs: g.outputs, updates: g.updates });
}

export function fromJSON(text: string): Graph {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new GraphError(`graph JSON does not parse: ${(e as Error).message}`);
  }
  if (raw['format'] !== FORMAT) throw new GraphError(`graph JSON has format '${String(raw['format'])}', expected '${FORMAT}'`);
  if (!Array.isArray(raw['nodes'])) throw new GraphError('graph JSON has no node list');
  const nodes: Node[] = (raw['nodes'] as Record<string, unknown>[]).map((r, i) => {
    const op = String(r['op']);
    const shape = r['shape'] as (number | string)[];
    if (!Array.isArray(shape) || !shape.every((d) => typeof d === 'number' || typeof d === 'string')) {
      throw new GraphError(`graph JSON: node ${i} (${op}) has a malformed shape`);
    }
    if (!hasOp(op)) opDef(op, [shape], typeof r['site'] === 'string' ? r['site'] : undefined); // throws UnknownOpError
    if (!DTYPES.includes(r['dtype'] as DType)) throw new GraphError(`graph JSON: node ${i} (${op}) has unknown dtype '${String(r['dtype'])}'`);
    return {
      id: Number(r['id']),
      op,
      inputs: (r['inputs'] as number[]).map(Number),
      attrs: decodeValue(r['attrs'] ?? {}) as Node['attrs'],
      dtype: r['dtype'] as DType,
      shape,
      ...(typeof r['name'] === 'string' ? { name: r['name'] } : {}),
      ...(typeof r['site'] === 'string' ? { site: r['site'] } : {}),
    };
  });
  const g: Graph = {
    name: String(raw['name'] ?? ''),
    nodes,
    outputs: (raw['outputs'] ?? {}) as Record<string, number>,
    updates: (raw['updates'] ?? []) as Graph['updates'],
  };
  validateGraph(g);
  return freeze(g, true);
}
