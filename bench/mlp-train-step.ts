// One training step of an MLP 784-256-256-10, batch 128, softmax cross-entropy, Adam: rheo on
// the CPU (JavaScript; WebAssembly on one thread and on every core) and on WebGPU against
// TensorFlow.js (cpu, wasm, webgpu) and jax-js (wasm, webgpu), same data and initial weights,
// same process, same Dawn adapter for every WebGPU case. Each timed step
// reads its loss back. Prints JSON lines (bench/harness.ts); `--quick` keeps it under a minute.
// Then WebGPU only, against TF.js and jax-js on WebGPU: MLPs 784-1024-1024-10 at batch 512 and
// 1024-4096-4096-1024 at batch 1024; on a software adapter the second takes minutes a step and
// runs only with `--big` (the output says so).

import { adam, grad, tensor } from '../index.js';
import { availableParallelism } from 'node:os';
import { compileAsync, type Executable } from '../runtime/executor.js';
import { wasmAvailable } from '../runtime/wasm/device.js';
import { mlpGraph } from '../examples/mlp-model.js';
import { caseFactory, runCasesAgainstPeers, timeMetric, type OurCase } from './harness.js';
import { MLP, installNavigatorGpu, mlpCaseName, mlpData, mlpSpec, selectedPeers, type MlpSpec } from './peers.js';
import { progress } from './harness.js';
import { sharedWebGpuBackend } from '../runtime/webgpu/gpu-device.js';

const data = mlpData();
const x = tensor(data.x, [MLP.batch, MLP.sizes[0]]);
const y = tensor(data.y, [MLP.batch, MLP.sizes[3]]);

async function step(backend: 'js' | 'wasm' | 'webgpu', threads?: number, spec: MlpSpec = MLP): Promise<Executable> {
  const exe = await compileAsync(grad(mlpGraph(spec.sizes), 'loss'), {
    backend, ...(threads ? { threads } : {}), optimizer: adam(spec.lr, { beta1: spec.beta1, beta2: spec.beta2, eps: spec.eps }),
  });
  const vars: Record<string, Float32Array> = {};
  mlpData(spec).layers.forEach((l, i) => {
    vars[`param:w${i}`] = l.w;
    vars[`param:b${i}`] = l.b;
  });
  exe.setVariables(vars);
  return exe;
}

function describe(exe: Executable, shapes: Record<string, readonly number[]> = { x: x.shape, y: y.shape }): string {
  const plan = exe.plan(shapes);
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

// Larger MLPs, WebGPU only, against the WebGPU peers.
const webgpuPeers = selectedPeers().filter((p) => p.name.endsWith('webgpu'));
const software = gpuOk ? (await sharedWebGpuBackend())?.gpu.info.isCpu ?? false : false;
for (const spec of [mlpSpec([784, 1024, 1024, 10], 512), mlpSpec([1024, 4096, 4096, 1024], 1024)]) {
  const label = `${mlpCaseName(spec)}/webgpu`;
  let skip: string | null = gpuOk ? null : 'no WebGPU adapter';
  if (!skip && software && spec.sizes[1]! > 1024 && !process.argv.includes('--big')) skip = 'software adapter: a step takes minutes here (run with --big)';
  if (skip) {
    progress(`mlp-train-step/${label}: skipped (${skip})`);
    await runCasesAgainstPeers('mlp-train-step', [{ case: label, ours: skip }], timeMetric('ms_per_step'), [], () => skip!);
    continue;
  }
  const d = mlpData(spec);
  const feeds = { x: tensor(d.x, [spec.batch, spec.sizes[0]!]), y: tensor(d.y, [spec.batch, spec.sizes.at(-1)!]) };
  const exe = await step('webgpu', undefined, spec);
  await runCasesAgainstPeers('mlp-train-step', [{ case: label, note: describe(exe, { x: feeds.x.shape, y: feeds.y.shape }), ours: caseFactory(async () => async () => (await exe.run(feeds)).loss!.data[0]!) }],
    timeMetric('ms_per_step'), webgpuPeers, (p) => p.mlpStep(spec));
}
