// f32 matmul GFLOP/s at 256³ and 1024³: rheo's generated kernels on the CPU (JavaScript; WebAssembly
// on one thread and on every core) and on WebGPU against
// TensorFlow.js (cpu, wasm, webgpu), jax-js (wasm, webgpu) and ONNX Runtime's native CPU kernels
// (onnxruntime-node, one thread and every core: the gap to native code), same operands, same process, same
// Dawn adapter for every WebGPU case; operands stay where they are made (rheo: as params), and
// every run reads the result back (into a new array; the case suffixed '/into' also on every
// core, into one array passed again and again with `run`'s `into`, which spares the page faults
// of a fresh result array). Prints JSON lines (bench/harness.ts); ratio = peer GFLOP/s /
// ours (lower is better). Then WebGPU only, 2048³, 4096³ and 8192³ against TF.js and jax-js on
// WebGPU with the product left on the device and only C[0, 0] read back; on a software adapter
// the two larger take minutes and run only with `--big` (the output says so); beside each, an f16
// row (f16 operands and output, products accumulated in f32; on an adapter without 'shader-f16'
// f16 is f32 storage rounded to binary16 on every store, and the row's note says that it claims
// no f16 speed there). Last, f16 8192³ on
// subgroup matrices (tensor cores) where the adapter has them (bench/matmul-subgroup-matrix.ts;
// in Node, Dawn lists them only with RHEO_WEBGPU_UNSAFE_APIS=1), else a line saying it has none.

import { f16, f32, graph } from '../index.js';
import { availableParallelism } from 'node:os';
import { compileAsync } from '../runtime/executor.js';
import { wasmAvailable } from '../runtime/wasm/device.js';
import { caseFactory, gflopsMetric, runCasesAgainstPeers } from './harness.js';
import { installNavigatorGpu, matmulData, matmulFlops, selectedPeers } from './peers.js';
import { progress } from './harness.js';
import { sharedWebGpuBackend } from '../runtime/webgpu/gpu-device.js';
import { benchSubgroupMatrix } from './matmul-subgroup-matrix.js';

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
        case: `f32_n${n}/wasm_t${threads}/into`,
        note: `wasm backend: ${wasmN?.device.description ?? 'no WebAssembly SIMD'}, C written into the caller's array (run's \`into\`)`,
        ours: wasmN ? ((c) => () => wasmN.runSync({}, undefined, { into: { c } }).c!.data)(new Float32Array(n * n)) : 'no WebAssembly SIMD',
      },
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

// Large products on the device: C = A·B stays there, C[0, 0] is read back (a one-element slice).
const webgpuPeers = selectedPeers().filter((p) => p.name.endsWith('webgpu'));
for (const [n, dt] of [2048, 4096, 8192].flatMap((n) => [[n, 'f32'], [n, 'f16']] as const)) {
  const label = `${dt}_n${n}_on_device/webgpu`;
  let skip: string | null = gpuOk ? null : 'no WebGPU adapter';
  const t = dt === 'f16' ? f16(n, n) : f32(n, n);
  const exe = skip ? null : await compileAsync(graph(`matmul${n}`, (g) => {
    const c = g.matmul(g.param('a', t), g.param('b', t));
    return { c00: g.slice(c, [0, 0], [1, 1]) };
  }), { backend: 'webgpu' });
  const be = exe ? await sharedWebGpuBackend() : null;
  const maxBytes = be ? Math.min(be.gpu.limits.maxStorageBufferBindingSize, be.gpu.limits.maxBufferSize) : Infinity;
  if (!skip && n * n * be!.elementBytes(dt) > maxBytes) skip = `${n}×${n} ${dt} exceed this adapter's largest storage binding (${maxBytes} bytes)`;
  if (!skip && be?.gpu.info.isCpu && n > 2048 && !process.argv.includes('--big')) skip = `software adapter: ${n}³ takes minutes here (run with --big)`;
  if (skip) {
    progress(`matmul/${label}: skipped (${skip})`);
    await runCasesAgainstPeers('matmul', [{ case: label, ours: skip }], gflopsMetric(matmulFlops(n)), [], () => skip!);
    continue;
  }
  const { a, b } = matmulData(n);
  exe!.setVariables({ 'param:a': a, 'param:b': b });
  const f16Note = be!.f16
    ? ', f16 operands and output (array<f16>), f16 products accumulated in f32'
    : ", f16 without 'shader-f16' on this adapter: f32 storage with every store rounded to binary16 (quantizeToF16), so no f16 speed is claimed";
  await runCasesAgainstPeers(
    'matmul',
    [{ case: label, note: `webgpu backend on ${exe!.backendInfo.adapter}${dt === 'f16' ? f16Note : ''}`, ours: caseFactory(async () => async () => (await exe!.run({})).c00!.data[0]!) }],
    gflopsMetric(matmulFlops(n)),
    // the peers multiply f32 only: the f16 row stands beside our f32 row
    dt === 'f16' ? [] : webgpuPeers,
    (p) => p.matmulOnDevice?.(n) ?? `${p.name} has no on-device matmul case`,
  );
}

// f16 on subgroup matrices, where the adapter has them
await benchSubgroupMatrix(gpuOk ? await sharedWebGpuBackend() : null, 8192);
