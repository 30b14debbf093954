// The machine's WebAssembly SIMD ceiling: how many f32 flops a second one thread can issue
// through V8, measured with kernels that do nothing else. Twelve independent accumulators (so
// that the latency of each multiply-add is hidden), four lanes each, in registers; one loop
// test per twelve vector operations. Three forms:
//
//   fma      f32x4.relaxed_madd (where the engine has relaxed SIMD): 8 flops an instruction
//   mul+add  f32x4.mul then f32x4.add, as kernels compute without relaxed SIMD
//   add      f32x4.add alone (4 flops an instruction), for the adder's own rate
//
// This is the denominator for "fraction of the ceiling" in bench/matmul.ts's figures: a matmul
// kernel on one thread can reach the fma figure at best. Prints GFLOP/s per form, the median of
// several timed calls, as JSON lines (bench/harness.ts); no peers.
//
//   npx tsx bench/simd-ceiling.ts [--quick]

import { Code, Op, Simd, encodeModule } from '../runtime/wasm/encoder.js';
import { wasmFeatures } from '../runtime/wasm/device.js';
import { wasmApi } from '../runtime/wasm/wasm-api.js';
import { QUICK, emit, median } from './harness.js';

type Form = 'fma' | 'mul+add' | 'add';

/** accumulators: twelve, plus the two operands, fit x86-64's sixteen vector registers */
const ACC = 12;

/** A module exporting `run(iterations)`: ACC accumulators updated `iterations` times by `form`. */
function ceilingModule(form: Form): Uint8Array {
  const c = new Code(['i32'], 'f32');
  const n = 0;
  const i = c.local('i32');
  const x = c.local('v128');
  const y = c.local('v128');
  const acc = Array.from({ length: ACC }, () => c.local('v128'));
  c.f32x4(0.999).set(x).f32x4(1e-7).set(y);
  for (const [k, a] of acc.entries()) c.f32x4(k).set(a);
  c.i32(0).set(i);
  c.block().loop();
  c.get(i).get(n).op(Op.i32GeS).brIf(1);
  for (const a of acc) {
    if (form === 'fma') c.get(a).get(x).get(y).simd(Simd.f32x4RelaxedMadd).set(a);
    else if (form === 'mul+add') c.get(a).get(x).simd(Simd.f32x4Mul).get(y).simd(Simd.f32x4Add).set(a);
    else c.get(a).get(y).simd(Simd.f32x4Add).set(a);
  }
  c.get(i).i32(1).op(Op.i32Add).set(i).br(0);
  c.end().end();
  // the sum of every accumulator's lane 0, so that no update is dead code
  c.f32x4(0);
  for (const a of acc) c.get(a).simd(Simd.f32x4Add);
  c.simd(Simd.f32x4ExtractLane).op(0);
  return encodeModule({ memory: null, imports: [], functions: [c], exports: { run: 0 } });
}

/** flops of one update of one accumulator */
const FLOPS: Record<Form, number> = { fma: 8, 'mul+add': 8, add: 4 };

const api = wasmApi();
if (!api) throw new Error('simd-ceiling: this engine has no WebAssembly');
const forms: Form[] = wasmFeatures().relaxed ? ['fma', 'mul+add', 'add'] : ['mul+add', 'add'];
const iterations = QUICK ? 2_000_000 : 10_000_000;
for (const form of forms) {
  const instance = new api.Instance(new api.Module(ceilingModule(form)), {});
  const run = instance.exports['run'] as (n: number) => number;
  for (let w = 0; w < 3; w++) run(iterations / 10);
  const samples: number[] = [];
  for (let r = 0; r < (QUICK ? 5 : 15); r++) {
    const t0 = performance.now();
    run(iterations);
    samples.push(performance.now() - t0);
  }
  const gflops = (iterations * ACC * FLOPS[form]) / (median(samples) * 1e6);
  emit({ bench: 'simd-ceiling', case: `f32x4_${form}_1thread`, metric: 'throughput', value: gflops, unit: 'GFLOP/s', peer: null, peer_value: null, ratio: null, note: `${ACC} independent accumulators, one thread` });
}
