// f32 matmul GFLOP/s at 256³ and 1024³: rheo's generated kernels on the CPU (JavaScript; WebAssembly
// on one thread and on every core) and on WebGPU against
// TensorFlow.js (cpu, wasm, webgpu), jax-js (wasm, webgpu) and ONNX Runtime's native CPU kernels
// (onnxruntime-node, one thread and every core: the gap to native code), same operands, same process, same
// Dawn adapter for every WebGPU case; operands stay where they are made (rheo: as params), and
// every run reads the result back. Prints JSON lines (bench/harness.ts); ratio = peer GFLOP/s /
// ours (lower is better).

import { f32, graph } from '../index.js';
import { availableParallelism } from 'node:os';
import { compileAsync } from '../runtime/executor.js';
import { wasmAvailable } from '../runtime/wasm/device.js';
import { caseFactory, gflopsMetric, runCasesAgainstPeers } from './harness.js';
import { installNavigatorGpu, matmulData, matmulFlops, selectedPeers } from './peers.js';

const gpuOk = await installNavigatorGpu();
const threads = availableParallelism();

for (const n of [256, 1024]) {
  const { a, b } = matmulData(n);
  const make = async (backend: 'js' | 'wasm' | 'webgpu', threads?: number) => {
    const exe = await compileAsync(graph(`matmul${n}`, (g) => ({ c: g.matmul(g.param('a', f32(n, n)), g.param('b', f32(n, n))) })), { backend, ...(threads ? { threads } : {}) });
    exe.setVariables({ 'param:a': a, 'param:b': b });
    return exe;
  };
  const cpu = await make('js');
  const wasm1 = wasmAvailable() ? await make('wasm', 1) : null;
  const wasmN = wasmAvailable() ? await make('wasm', threads) : null;
  const gpu = gpuOk ? await make('webgpu') : null;
  await runCasesAgainstPeers(
    'matmul',
    [
      { case: `f32_n${n}`, note: 'js backend: generated JavaScript, one thread', ours: () => cpu.runSync({}).c!.data },
      { case: `f32_n${n}/wasm_t1`, note: `wasm backend: ${wasm1?.device.description ?? 'no WebAssembly SIMD'}`, ours: wasm1 ? () => wasm1.runSync({}).c!.data : 'no WebAssembly SIMD' },
      { case: `f32_n${n}/wasm_t${threads}`, note: `wasm backend: ${wasmN?.device.description ?? 'no WebAssembly SIMD'}`, ours: wasmN ? () => wasmN.runSync({}).c!.data : 'no WebAssembly SIMD' },
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
