// Reactive runs: a compiled graph driven by rxjs Observables. Once every input has a value,
// each emission reruns only the nodes downstream of the input that changed; values the rerun
// reads from unchanged parts are cached from earlier runs. Each output is an Observable that
// emits when (and only when) that output was recomputed. Updates (training) are not applied
// here: reactive runs are for inference; online training is the trainer's job. On a device that
// reads back synchronously (the CPU) each result is emitted within the emission that caused it;
// on WebGPU results arrive asynchronously, in emission order.

import { concatMap, from, merge, Observable, of, share, filter, map } from 'rxjs';
import { produce } from 'immer';
import type { Graph, Node } from '../graphs/graph.js';
import { ancestors, descendants, SOURCE_OPS } from '../graphs/graph.js';
import { GraphError } from '../graphs/errors.js';
import { dict, hasName, lookup } from '../graphs/dict.js';
import type { Executable, Feed, Outputs } from './executor.js';
import type { HostTensor } from './tensor.js';

export interface ReactiveResult {
  /** inputs whose emission caused this run (all of them for the first run) */
  readonly changed: readonly string[];
  /** outputs that were recomputed */
  readonly outputs: Outputs;
  /** kernels launched by this run */
  readonly kernels: number;
}

export interface ReactiveRun {
  readonly outputs: { readonly [name: string]: Observable<HostTensor> };
  /** every run, with what changed and what it cost */
  readonly results$: Observable<ReactiveResult>;
}

const cacheName = (id: number) => `__cache/${id}`;

/** Drive `exe` with Observables of feeds. */
export function reactive(exe: Executable, sources: Readonly<Record<string, Observable<Feed>>>, opts: { outputs?: readonly string[] } = {}): ReactiveRun {
  const g = exe.graph;
  const inputs = g.nodes.filter((n) => n.op === 'input');
  for (const n of inputs) if (!lookup(sources, n.name!)) throw new GraphError(`reactive: no Observable for input '${n.name}'`);
  const outNames = opts.outputs ?? exe.defaultOutputs;
  const outIds = outNames.map((o) => {
    const id = lookup(g.outputs, o);
    if (id === undefined) throw new GraphError(`reactive: graph '${g.name}' has no output '${o}'`);
    return id;
  });
  const needed = new Set(ancestors(g, outIds));

  // Per input: the nodes it dirties and the clean computed values those nodes read.
  const dirty = new Map<string, Set<number>>();
  const frontier = new Map<string, number[]>();
  for (const n of inputs) {
    const d = new Set(descendants(g, [n.id]).filter((id) => needed.has(id)));
    dirty.set(n.name!, d);
    const f = new Set<number>();
    for (const id of d) for (const j of g.nodes[id]!.inputs) if (!d.has(j) && !SOURCE_OPS.has(g.nodes[j]!.op)) f.add(j);
    frontier.set(n.name!, [...f]);
  }
  const allFrontier = [...new Set([...frontier.values()].flat())];

  // The full run also returns every frontier value, to seed the caches.
  const fullGraph = withOutputs(g, allFrontier, [], outNames);
  const full = exe.derive(fullGraph, [...outNames, ...allFrontier.map(cacheName)]);
  // The partial run for input k reads its frontier from the cache and recomputes the rest.
  const partial = new Map<string, { exe: Executable; outs: string[] }>();
  for (const n of inputs) {
    const d = dirty.get(n.name!)!;
    const outs = [...outNames.filter((o) => d.has(g.outputs[o]!)), ...allFrontier.filter((id) => d.has(id)).map(cacheName)];
    const pg = withOutputs(g, allFrontier.filter((id) => d.has(id)), frontier.get(n.name!)!, outNames);
    partial.set(n.name!, { exe: exe.derive(pg, outs), outs });
  }

  const latest = new Map<string, Feed>();
  const cache = new Map<number, HostTensor>();
  let primed = false;
  const step = ({ name, value }: { name: string; value: Feed }): Observable<ReactiveResult | null> => {
    latest.set(name, value);
    if (latest.size < inputs.length) return of(null);
    const runner = primed ? partial.get(name)! : { exe: full, outs: [...outNames, ...allFrontier.map(cacheName)] };
    const feeds = dict<Feed>(latest);
    if (primed) for (const id of frontier.get(name)!) feeds[cacheName(id)] = cache.get(id)!;
    const before = runner.exe.stats.kernelLaunches;
    const changed = primed ? [name] : inputs.map((n) => n.name!);
    const finish = (res: Outputs): ReactiveResult => {
      const outputs: Outputs = dict();
      for (const [k, v] of Object.entries(res)) {
        if (k.startsWith('__cache/')) cache.set(Number(k.slice(8)), v);
        else outputs[k] = v;
      }
      primed = true;
      return { changed, outputs, kernels: runner.exe.stats.kernelLaunches - before };
    };
    const exe = runner.exe;
    if (exe.backendInfo.backend !== 'pending' && exe.device.caps.sync) return of(finish(exe.runSync(feeds, runner.outs)));
    return from(exe.run(feeds, runner.outs).then(finish));
  };

  // concatMap: an emission is processed once the one before it has its results (and cached values)
  const results$ = merge(...inputs.map((n) => sources[n.name!]!.pipe(map((value) => ({ name: n.name!, value }))))).pipe(
    concatMap(step),
    filter((r): r is ReactiveResult => r !== null),
    share(),
  );
  const outputs = dict<Observable<HostTensor>>();
  for (const o of outNames) {
    outputs[o] = results$.pipe(
      filter((r) => hasName(r.outputs, o)),
      map((r) => r.outputs[o]!),
    );
  }
  return { outputs, results$ };
}

/** The graph with `cached` nodes turned into inputs and `extra` nodes added as outputs. */
function withOutputs(g: Graph, extra: readonly number[], cached: readonly number[], keep: readonly string[]): Graph {
  return produce(g, (d) => {
    for (const id of cached) {
      const n = d.nodes[id]!;
      const replaced: Node = { id, op: 'input', inputs: [], attrs: { dtype: n.dtype, shape: [...n.shape] }, dtype: n.dtype, shape: n.shape, name: cacheName(id) };
      d.nodes[id] = replaced as (typeof d.nodes)[number];
    }
    for (const k of Object.keys(d.outputs)) if (!keep.includes(k)) delete d.outputs[k];
    for (const id of extra) d.outputs[cacheName(id)] = id;
    d.updates = [];
  });
}
