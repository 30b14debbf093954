// f32 matmul GFLOP/s at 256³ and 1024³: rheo's generated CPU kernel against TensorFlow.js (cpu,
// wasm) and jax-js (wasm), same operands, same process, result read back every run.
// Prints JSON lines (bench/harness.ts); ratio = peer GFLOP/s / ours (lower is better).

import { compile, f32, graph, tensor } from '../index.js';
import { caseFactory, gflopsMetric, runAgainstPeers } from './harness.js';
import { matmulData, matmulFlops, selectedPeers } from './peers.js';

for (const n of [256, 1024]) {
  const { a, b } = matmulData(n);
  const exe = compile(graph(`matmul${n}`, (g) => ({ c: g.matmul(g.input('a', f32(n, n)), g.input('b', f32(n, n))) })));
  const feeds = { a: tensor(a, [n, n]), b: tensor(b, [n, n]) };
  await runAgainstPeers(
    'matmul',
    `f32_n${n}`,
    gflopsMetric(matmulFlops(n)),
    caseFactory(async () => () => exe.runSync(feeds).c!.data),
    selectedPeers(),
    (p) => p.matmul(n),
    { note: 'cpu backend: generated JavaScript, one thread' },
  );
}
