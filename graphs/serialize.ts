// A stable JSON form for graphs that round-trips exactly: numbers that JSON cannot carry
// (NaN, ±Infinity, -0) are tagged, key order is fixed, and parsing validates structure, that
// every op is known, and every node's type against its op's rule. This is the format graphs are
// stored and exchanged in.

import { freeze } from 'immer';
import type { AttrValue, Graph, Node, Update } from './graph.js';
import { nodeType, validateGraph } from './graph.js';
import { GraphError, RheoError } from './errors.js';
import { dict, lookup } from './dict.js';
import { hasOp, opDef } from '../ops/registry.js';
import { DTYPES, typeToString, type DType, type TensorType } from './types.js';

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
    return dict(Object.keys(v).sort().map((k) => [k, encodeValue((v as Record<string, AttrValue>)[k]!)] as const));
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
    return dict(Object.keys(o).map((k) => [k, decodeValue(o[k])] as const));
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

/**
 * Parses and validates a graph written by `toJSON`. Beyond structure (ids, inputs defined
 * earlier, outputs, updates) every node is type-checked again: sources (inputs, params, state,
 * constants) must declare well-formed types and initializers, and each op's shape and dtype are
 * inferred from its inputs with the same rules the builder uses and must equal what the node
 * declares. Anything else is a GraphError naming the node (an unknown op is an UnknownOpError).
 */
export function fromJSON(text: string): Graph {
  if (typeof text !== 'string') throw new GraphError(`graph JSON must be a string, got ${text === null ? 'null' : typeof text}`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new GraphError(`graph JSON does not parse: ${(e as Error).message}`);
  }
  if (!isRecord(raw)) throw new GraphError(`graph JSON is ${describe(raw)}, expected an object with format '${FORMAT}'`);
  if (raw['format'] !== FORMAT) throw new GraphError(`graph JSON has format '${String(raw['format'])}', expected '${FORMAT}'`);
  const name = raw['name'] ?? '';
  if (typeof name !== 'string') throw new GraphError(`graph JSON: 'name' is ${describe(name)}, expected a string`);
  if (!Array.isArray(raw['nodes'])) throw new GraphError('graph JSON has no node list');
  const nodes: Node[] = [];
  for (const r of raw['nodes'] as unknown[]) nodes.push(parseNode(r, nodes));

  const rawOutputs = raw['outputs'];
  if (!isRecord(rawOutputs)) throw new GraphError(`graph JSON: 'outputs' is ${describe(rawOutputs)}, expected an object of node ids by name`);
  const outputs = dict<number>();
  for (const [k, id] of Object.entries(rawOutputs)) {
    if (!Number.isInteger(id)) throw new GraphError(`graph JSON: output '${k}' is ${describe(id)}, expected a node id`);
    outputs[k] = id as number;
  }
  const rawUpdates = raw['updates'] ?? [];
  if (!Array.isArray(rawUpdates)) throw new GraphError(`graph JSON: 'updates' is ${describe(rawUpdates)}, expected a list`);
  const updates: Update[] = rawUpdates.map((u: unknown, i) => {
    if (!isRecord(u) || !Number.isInteger(u['target']) || !Number.isInteger(u['value'])) {
      throw new GraphError(`graph JSON: update ${i} is ${describe(u)}, expected { target, value } node ids`);
    }
    return { target: u['target'] as number, value: u['value'] as number };
  });

  const g: Graph = { name, nodes, outputs, updates };
  validateGraph(g);
  checkTypes(g);
  return freeze(g, true);
}

const SOURCE_WITH_NAME = new Set(['input', 'param', 'state']);

function parseNode(r: unknown, before: readonly Node[]): Node {
  const i = before.length;
  if (!isRecord(r)) throw new GraphError(`graph JSON: node ${i} is ${describe(r)}, expected an object`);
  const op = r['op'];
  if (typeof op !== 'string') throw new GraphError(`graph JSON: node ${i} has op ${describe(op)}, expected an op name`);
  const name = r['name'];
  const site = r['site'];
  const who = `node ${i} (${op}${typeof name === 'string' ? ` '${name}'` : ''})`;
  const fail = (why: string): never => {
    throw new GraphError(`graph JSON: ${who} ${why}`, i);
  };
  if (r['id'] !== i) fail(`has id ${describe(r['id'])}; ids must count up from 0 in node order`);
  const shape = r['shape'];
  if (!Array.isArray(shape) || !shape.every((d) => typeof d === 'number' || typeof d === 'string')) fail(`has a malformed shape ${describe(shape)}`);
  const inputs = r['inputs'];
  if (!Array.isArray(inputs) || !inputs.every((j) => Number.isInteger(j))) fail(`has inputs ${describe(inputs)}, expected a list of node ids`);
  if (!hasOp(op)) opDef(op, (inputs as number[]).map((j) => before[j]?.shape ?? []), typeof site === 'string' ? site : undefined); // throws UnknownOpError
  if (!DTYPES.includes(r['dtype'] as DType)) fail(`has unknown dtype ${describe(r['dtype'])} (dtypes: ${DTYPES.join(', ')})`);
  const attrs = r['attrs'] ?? {};
  if (!isRecord(attrs)) fail(`has attrs ${describe(attrs)}, expected an object`);
  if (name !== undefined && typeof name !== 'string') fail(`has name ${describe(name)}, expected a string`);
  if (SOURCE_WITH_NAME.has(op) && typeof name !== 'string') fail('has no name');
  if (site !== undefined && typeof site !== 'string') fail(`has site ${describe(site)}, expected a string`);
  return {
    id: i,
    op,
    inputs: inputs as number[],
    attrs: decodeValue(attrs) as Node['attrs'],
    dtype: r['dtype'] as DType,
    shape: shape as (number | string)[],
    ...(typeof name === 'string' ? { name } : {}),
    ...(typeof site === 'string' ? { site } : {}),
  };
}

/** Every node's declared type against its op's rule; source declarations and initializers checked. */
function checkTypes(g: Graph): void {
  const seen = new Map<string, number>();
  for (const n of g.nodes) {
    const who = nodeLabel(n);
    const fail = (why: string): never => {
      throw new GraphError(`graph JSON: ${who} ${why}`, n.id);
    };
    if (n.name !== undefined && SOURCE_WITH_NAME.has(n.op)) {
      const key = `${n.op}:${n.name}`;
      if (seen.has(key)) fail(`has the same name as node ${seen.get(key)}`);
      seen.set(key, n.id);
    }
    if (opDef(n.op).kind === 'source' || (n.inputs.length === 0 && n.attrs['shape'] !== undefined)) checkSource(n, fail);
    const ins = n.inputs.map((j) => nodeType(g.nodes[j]!));
    let t: TensorType;
    try {
      t = opDef(n.op).infer(ins, n.attrs, n.site);
    } catch (e) {
      const why = e instanceof RheoError ? e.message : `(${(e as Error).message})`;
      return fail(`does not type-check${ins.length ? ` on inputs ${ins.map(typeToString).join(', ')}` : ''}: ${why}`);
    }
    if (!sameType(t, n)) {
      fail(
        `declares ${typeToString(n)}, but ${n.inputs.length ? `${n.op} of ${ins.map(typeToString).join(', ')}` : 'its attributes'} ` +
          `give${n.inputs.length ? 's' : ''} ${typeToString(t)}`,
      );
    }
  }
  for (const u of g.updates) {
    const target = g.nodes[u.target]!, value = g.nodes[u.value]!;
    if (!sameType(target, value)) {
      throw new GraphError(`graph JSON: update of ${nodeLabel(target)} by ${nodeLabel(value)}: ${typeToString(value)} does not fit ${typeToString(target)}`, value.id);
    }
  }
}

const INIT_FIELDS: Readonly<Record<string, readonly string[]>> = dict(Object.entries({
  zeros: [], constant: ['value'], normal: ['std'], uniform: ['low', 'high'], he: [], glorot: [],
}));

/** Sources declare their own type: a known dtype, dims that are positive integers or symbol names. */
function checkSource(n: Node, fail: (why: string) => never): void {
  const dt = n.attrs['dtype'], shape = n.attrs['shape'];
  if (!DTYPES.includes(dt as DType)) fail(`declares unknown dtype ${describe(dt)} in its attributes (dtypes: ${DTYPES.join(', ')})`);
  if (!Array.isArray(shape)) fail(`declares no shape in its attributes`);
  for (const d of [...(shape as unknown[]), ...n.shape]) {
    if (!((typeof d === 'number' && Number.isSafeInteger(d) && d > 0) || (typeof d === 'string' && d.length > 0))) {
      fail(`has dim ${describe(d)}; dims are positive integers or symbol names`);
    }
  }
  if (n.op === 'param' && !(shape as unknown[]).every((d) => typeof d === 'number')) fail(`must have a literal shape, declares [${(shape as unknown[]).join(', ')}]`);
  if (n.op === 'param' || n.op === 'state') {
    const init = n.attrs['init'];
    if (!isRecord(init) || typeof init['kind'] !== 'string' || lookup(INIT_FIELDS, init['kind']) === undefined) {
      fail(`has initializer ${describe(init)}; kinds: ${Object.keys(INIT_FIELDS).join(', ')}`);
    }
    const spec = init as Record<string, AttrValue>;
    for (const f of INIT_FIELDS[spec['kind'] as string]!) if (typeof spec[f] !== 'number') fail(`has a '${spec['kind']}' initializer without a numeric '${f}'`);
    if (spec['mean'] !== undefined && typeof spec['mean'] !== 'number') fail(`has a '${spec['kind']}' initializer whose 'mean' is not a number`);
    const std = spec['std'], low = spec['low'], high = spec['high'];
    if (typeof std === 'number' && !(Number.isFinite(std) && std >= 0)) fail(`has a normal initializer with std ${std}`);
    if (typeof low === 'number' && typeof high === 'number' && !(Number.isFinite(low) && Number.isFinite(high) && low <= high)) {
      fail(`has a uniform initializer over [${low}, ${high})`);
    }
  }
  if (n.op === 'const') {
    const data = n.attrs['data'], fill = n.attrs['fill'];
    if (data !== undefined && !(Array.isArray(data) && data.every((v) => typeof v === 'number'))) fail('has constant data that is not a list of numbers');
    if (data === undefined && typeof fill !== 'number') fail(`has neither data nor a numeric fill`);
  }
}

function nodeLabel(n: Node): string {
  return `node ${n.id} (${n.op}${n.name !== undefined ? ` '${n.name}'` : ''})`;
}

function sameType(a: TensorType, b: TensorType): boolean {
  return a.dtype === b.dtype && a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === undefined) return 'missing';
  const s = JSON.stringify(v);
  return s === undefined ? typeof v : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}
