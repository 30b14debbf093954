// f32 matmul GFLOP/s at 256³ and 1024³: rheo's generated kernels on the CPU and on WebGPU against
// TensorFlow.js (cpu, wasm, webgpu) and jax-js (wasm, webgpu), same operands, same process, same
// Dawn adapter for every WebGPU case; operands stay where they are made (rheo: as params), and
// every run reads the result back. Prints JSON lines (bench/harness.ts); ratio = peer GFLOP/s /
// ours (lower is better).

import { f32, graph } from '../index.js';
import { compileAsync } from '../runtime/executor.js';
import { caseFactory, gflopsMetric, runCasesAgainstPeers } from './harness.js';
import { installNavigatorGpu, matmulData, matmulFlops, selectedPeers } from './peers.js';

const gpuOk = await installNavigatorGpu();

for (const n of [256, 1024]) {
  const { a, b } = matmulData(n);
  const make = async (backend: 'cpu' | 'webgpu') => {
    const exe = await compileAsync(graph(`matmul${n}`, (g) => ({ c: g.matmul(g.param('a', f32(n, n)), g.param('b', f32(n, n))) })), { backend });
    exe.setVariables({ 'param:a': a, 'param:b': b });
    return exe;
  };
  const cpu = await make('cpu');
  const gpu = gpuOk ? await make('webgpu') : null;
  await runCasesAgainstPeers(
    'matmul',
    [
      { case: `f32_n${n}`, note: 'cpu backend: generated JavaScript, one thread', ours: () => cpu.runSync({}).c!.data },
      {
        case: `f32_n${n}/webgpu`,
        note: gpu ? `webgpu backend on ${gpu.backendInfo.adapter}` : 'webgpu backend',
        ours: gpu ? caseFactory(async () => async () => (await gpu.run({})).c!.data) : 'no WebGPU adapter',
      },
    ],
    gflopsMetric(matmulFlops(n)),
    selectedPeers(),
    (p) => p.matmul(n),
  );
}
