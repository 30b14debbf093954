// A fused elementwise chain, y = relu(x·a + b)·c + d over 1M f32 elements (a, b, c, d scalars):
// milliseconds per evaluation including reading y back, rheo on the CPU and on WebGPU (one fused
// kernel) against TensorFlow.js (cpu, wasm, webgpu) and jax-js (wasm, webgpu, jit). Two cases:
// 'host', where x comes from host memory on every evaluation (rheo: a fed input), and 'resident',
// where x is made once (rheo: a param). Each CPU case is measured twice: y read into a new array
// every evaluation (what the peers do), and y written into one array the caller passes again and
// again (`run`'s `into` option; case name suffix '/into'). Same process, same Dawn adapter for
// every WebGPU case. Prints JSON lines (bench/harness.ts); `--quick` keeps it under a minute.

import { f32, graph, type Graph } from '../index.js';
import { compileAsync, type Executable } from '../runtime/executor.js';
import { WasmDevice } from '../runtime/wasm/device.js';
import { caseFactory, runCasesAgainstPeers, timeMetric, type CaseOrSkip } from './harness.js';
import { CHAIN, chainData, chainReference, installNavigatorGpu, selectedPeers, type ChainInput } from './peers.js';

const { n, a, b, c, d } = CHAIN;
const x = chainData();
const want = chainReference(x);

function chain(input: ChainInput): Graph {
  return graph('chain', (g) => {
    const v = input === 'host' ? g.input('x', f32(n)) : g.param('x', f32(n));
    return { y: g.add(g.mul(g.relu(g.add(g.mul(v, a), b)), c), d) };
  });
}

/** Our evaluation, checked once against the float64 reference before it is timed. */
async function ours(backend: 'cpu' | 'webgpu', input: ChainInput, into = false): Promise<{ fn: CaseOrSkip; note: string }> {
  const exe: Executable = await compileAsync(chain(input), { backend });
  if (input === 'resident') exe.setVariables({ 'param:x': x });
  const feeds: Record<string, Float32Array> = input === 'host' ? { x } : {};
  const y = new Float32Array(n);
  const fn = into ? async () => (await exe.run(feeds, undefined, { into: { y } })).y!.data : async () => (await exe.run(feeds)).y!.data;
  // on the wasm device, whether the launch ran in row chunks with its host copies (runtime/wasm/stream.ts)
  const device = backend === 'cpu' ? exe.device : null;
  let streamed = false;
  if (device instanceof WasmDevice) device.profiler = (r) => void (streamed ||= r.streamed);
  const got = await fn();
  if (device instanceof WasmDevice) device.profiler = null;
  for (let i = 0; i < n; i += 997) if (Math.abs(got[i]! - want[i]!) > 1e-5) throw new Error(`${backend}: y[${i}] = ${got[i]}, expected ${want[i]}`);
  const plan = exe.plan(input === 'host' ? { x: [n] } : {});
  const where = backend === 'webgpu' ? `webgpu backend on ${exe.backendInfo.adapter}` : 'cpu backend';
  const how = `${streamed ? ', run in row chunks with its host copies' : ''}${into ? ", y written into the caller's array (run's `into`)" : ''}`;
  return { fn, note: `${where}, ${plan.kernelCount} kernel (${plan.unfusedKernelCount} ops before fusion)${how}` };
}

const gpuOk = await installNavigatorGpu();
for (const input of ['host', 'resident'] as const) {
  const cpu = await ours('cpu', input);
  const cpuInto = await ours('cpu', input, true);
  const gpu = gpuOk ? await ours('webgpu', input) : { fn: 'no WebGPU adapter', note: 'webgpu backend' };
  await runCasesAgainstPeers(
    'fused-elementwise',
    [
      { case: `relu_chain_1M_${input}`, note: cpu.note, ours: caseFactory(() => cpu.fn) },
      { case: `relu_chain_1M_${input}/into`, note: cpuInto.note, ours: caseFactory(() => cpuInto.fn) },
      { case: `relu_chain_1M_${input}/webgpu`, note: gpu.note, ours: caseFactory(() => gpu.fn) },
    ],
    timeMetric('ms_per_eval'),
    selectedPeers(),
    (p) => p.chain(input),
  );
}
