// The live model: immutable, versioned copies of a training executable's params (a snapshot) and
// inference that pairs each input with the latest snapshot, so every prediction uses exactly one
// version while training goes on. Snapshots are copies: nothing here reads the trainer's buffers
// after the copy is taken, and the inference executable has buffers of its own.

import { Observable, combineLatest, concatMap, from, of, withLatestFrom } from 'rxjs';
import { GraphError } from '../../graphs/errors.js';
import { dict, lookup } from '../../graphs/dict.js';
import type { Executable, Feeds, Outputs } from '../executor.js';
import type { HostTensor } from '../tensor.js';

export interface Snapshot {
  /** 0 for the params training started from, then 1, 2, ... */
  readonly version: number;
  /** the training step the params are from */
  readonly step: number;
  /** frozen records over private copies of the data, by `exe.variables()` names */
  readonly variables: Readonly<Record<string, HostTensor>>;
}

/** A frozen copy of `exe`'s params (`include: 'all'` adds optimizer state). */
export function takeSnapshot(exe: Executable, version: number, step: number, include: 'params' | 'all' = 'params'): Snapshot {
  return freeze(exe.variables(), version, step, include);
}

/** `takeSnapshot` on any device: the copy is recorded now, the snapshot resolves when read back. */
export function captureSnapshot(exe: Executable, version: number, step: number, include: 'params' | 'all' = 'params'): Promise<Snapshot> {
  return exe.captureVariables().then((v) => freeze(v, version, step, include));
}

function freeze(variables: Record<string, HostTensor>, version: number, step: number, include: 'params' | 'all'): Snapshot {
  const vars = dict<HostTensor>();
  for (const [name, t] of Object.entries(variables)) {
    if (include === 'all' || name.startsWith('param:')) vars[name] = Object.freeze({ ...t, shape: Object.freeze([...t.shape]) });
  }
  return Object.freeze({ version, step, variables: Object.freeze(vars) });
}

export interface Prediction<I = Feeds> {
  readonly version: number;
  readonly step: number;
  readonly inputs: I;
  readonly outputs: Outputs;
}

/**
 * Runs `inference` (an executable over the model's params, e.g. `compile(model)`) on each input
 * with the latest snapshot's params. With `on: 'both'` a new snapshot also re-predicts the latest
 * input (combineLatest); by default only inputs trigger predictions (withLatestFrom), and inputs
 * that arrive before the first snapshot are skipped.
 *
 * @example
 * const run = train(step, batches, { snapshots: { every: 50 } });
 * predictWith(compile(model), queries$, run.snapshots$).subscribe((p) => show(p.version, p.outputs.logits));
 */
export function predictWith<I extends Feeds>(
  inference: Executable,
  inputs$: Observable<I>,
  snapshots$: Observable<Snapshot>,
  opts: { outputs?: readonly string[]; on?: 'input' | 'both' } = {},
): Observable<Prediction<I>> {
  const names = inference.graph.nodes.filter((n) => n.op === 'param' || n.op === 'state').map((n) => `${n.op}:${n.name}`);
  const paired = opts.on === 'both' ? combineLatest([inputs$, snapshots$]) : inputs$.pipe(withLatestFrom(snapshots$));
  return new Observable<Prediction<I>>((out) => {
    let loaded = -1;
    return paired
      .pipe(
        concatMap(([inputs, snap]) => {
          if (snap.version !== loaded) {
            const values = dict<HostTensor>();
            for (const name of names) {
              const v = lookup(snap.variables, name);
              if (v) values[name] = v;
              else if (name.startsWith('param:')) throw new GraphError(`predictWith: snapshot ${snap.version} has no '${name}'`);
            }
            inference.setVariables(values);
            loaded = snap.version;
          }
          const outs = opts.outputs ?? inference.defaultOutputs;
          const result = (outputs: Outputs): Prediction<I> => ({ version: snap.version, step: snap.step, inputs, outputs });
          // synchronously where the device reads back synchronously; in order on WebGPU
          if (inference.backendInfo.backend !== 'pending' && inference.device.caps.sync) return of(result(inference.runSync(inputs, outs, { update: false })));
          return from(inference.run(inputs, outs, { update: false }).then(result));
        }),
      )
      .subscribe(out);
  });
}
