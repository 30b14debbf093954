// One training step of an MLP 784-256-256-10, batch 128, softmax cross-entropy, Adam: rheo on
// the CPU (JavaScript; WebAssembly on one thread and on every core) and on WebGPU against
// TensorFlow.js (cpu, wasm, webgpu) and jax-js (wasm, webgpu), same data and initial weights,
// same process, same Dawn adapter for every WebGPU case. Each timed step
// reads its loss back. Prints JSON lines (bench/harness.ts); `--quick` keeps it under a minute.

import { adam, grad, tensor } from '../index.js';
import { availableParallelism } from 'node:os';
import { compileAsync, type Executable } from '../runtime/executor.js';
import { wasmAvailable } from '../runtime/wasm/device.js';
import { mlpGraph } from '../examples/mlp-model.js';
import { caseFactory, runCasesAgainstPeers, timeMetric, type OurCase } from './harness.js';
import { MLP, installNavigatorGpu, mlpData, selectedPeers } from './peers.js';

const data = mlpData();
const x = tensor(data.x, [MLP.batch, MLP.sizes[0]]);
const y = tensor(data.y, [MLP.batch, MLP.sizes[3]]);

async function step(backend: 'js' | 'wasm' | 'webgpu', threads?: number): Promise<Executable> {
  const exe = await compileAsync(grad(mlpGraph(MLP.sizes), 'loss'), {
    backend, ...(threads ? { threads } : {}), optimizer: adam(MLP.lr, { beta1: MLP.beta1, beta2: MLP.beta2, eps: MLP.eps }),
  });
  const vars: Record<string, Float32Array> = {};
  data.layers.forEach((l, i) => {
    vars[`param:w${i}`] = l.w;
    vars[`param:b${i}`] = l.b;
  });
  exe.setVariables(vars);
  return exe;
}

function describe(exe: Executable): string {
  const plan = exe.plan({ x: x.shape, y: y.shape });
  const info = exe.backendInfo;
  const where = info.backend === 'webgpu' ? `webgpu backend on ${info.adapter}` : exe.device.description.startsWith('wasm') ? `wasm backend: ${exe.device.description}` : 'js backend';
  return `${where}, ${plan.kernelCount} kernels (${plan.unfusedKernelCount} ops before fusion)`;
}

const gpuOk = await installNavigatorGpu();
const cpu = await step('js');
const cases: OurCase[] = [
  { case: 'mlp784-256-256-10_b128_adam', note: describe(cpu), ours: () => cpu.runSync({ x, y }).loss!.data[0]! },
];
for (const threads of wasmAvailable() ? [1, availableParallelism()] : []) {
  const w = await step('wasm', threads);
  cases.push({ case: `mlp784-256-256-10_b128_adam/wasm_t${threads}`, note: describe(w), ours: () => w.runSync({ x, y }).loss!.data[0]! });
}
let webgpuNote = 'webgpu backend: no adapter';
if (gpuOk) {
  const gpu = await step('webgpu');
  webgpuNote = describe(gpu);
  cases.push({ case: 'mlp784-256-256-10_b128_adam/webgpu', note: webgpuNote, ours: caseFactory(async () => async () => (await gpu.run({ x, y })).loss!.data[0]!) });
} else {
  cases.push({ case: 'mlp784-256-256-10_b128_adam/webgpu', note: webgpuNote, ours: 'no WebGPU adapter' });
}

await runCasesAgainstPeers('mlp-train-step', cases, timeMetric('ms_per_step'), selectedPeers(), (p) => p.mlpStep());
