// An f16 matmul on subgroup matrices (Dawn's 'chromium-experimental-subgroup-matrix': Vulkan
// cooperative matrices, i.e. tensor cores, and Metal's simdgroup matrices). A workgroup owns a
// BM×BN output tile; each K step of BK, its invocations stage A's BM×BK and B's BK×BN tiles in
// workgroup memory as f16 (zero past the edges, so partial tiles need no other care), and each
// subgroup multiplies its own block of FM×FN fragments of one adapter config's M×N×K shape into
// accumulators of the config's result type. The accumulators are stored to a workgroup tile, and
// every invocation applies the kernel's epilogue to its share of that tile on the way out (edges
// checked). Source text only; which adapters have the feature and which configs they list is
// device.ts's and the tuner's business.

import { RheoError } from '../../graphs/errors.js';
import type { MatmulKernel, MatmulOperand } from '../../ops/kernel-ir.js';
import type { SubgroupMatrixConfig } from './device.js';
import type { RenderedKernel } from './render-wgsl.js';
import { epilogueDecl } from './render-wgsl-matmul.js';
import { ExprEmitter, bindingTypes, convert, declareBindings, loopIterations } from './wgsl-expr.js';

/** One shape the adapter multiplies in (its `info.subgroupMatrixConfigs` entry, f16 operands). */
export interface SubgroupMatrixShape {
  readonly M: number;
  readonly N: number;
  readonly K: number;
  /** the accumulators' type */
  readonly result: 'f32' | 'f16';
}

/** What the device allows a subgroup-matrix kernel. */
export interface SubgroupMatrixDevice {
  /** the adapter's `subgroupMaxSize`: a workgroup's x size must be a multiple of it */
  readonly subgroupMaxSize: number;
  readonly maxInvocations: number;
  /** bytes of workgroup memory a kernel may use */
  readonly maxWorkgroupStorage: number;
}

/** How the kernel tiles: FM×FN fragments per subgroup, SR×SC subgroups per workgroup, K steps of BK. */
export interface SubgroupMatrixPlan {
  readonly shape: SubgroupMatrixShape;
  readonly FM: number;
  readonly FN: number;
  readonly SR: number;
  readonly SC: number;
  readonly BM: number;
  readonly BN: number;
  readonly BK: number;
  /** invocations per workgroup: SR·SC·subgroupMaxSize */
  readonly WG: number;
  /** workgroup memory: the two f16 tiles and the result tile */
  readonly bytes: number;
}

/** The configs a matmul with f16 operands can use, as shapes. */
export function f16Shapes(configs: readonly SubgroupMatrixConfig[]): SubgroupMatrixShape[] {
  return configs
    .filter((c) => c.componentType === 'f16' && (c.resultComponentType === 'f32' || c.resultComponentType === 'f16'))
    .map((c) => ({ M: c.M, N: c.N, K: c.K, result: c.resultComponentType as 'f32' | 'f16' }));
}

/**
 * The tiling for a config on a device, or null when none fits: each subgroup takes about 32×32
 * outputs, a workgroup up to 2×2 subgroups (fewer where subgroupMaxSize·4 exceeds the invocation
 * limit or the tiles exceed workgroup memory), K steps of about 32.
 */
export function planSubgroupMatrix(shape: SubgroupMatrixShape, dev: SubgroupMatrixDevice): SubgroupMatrixPlan | null {
  const { M, N, K } = shape;
  if (!(M > 0 && N > 0 && K > 0 && dev.subgroupMaxSize > 0)) return null;
  const FM = Math.max(1, Math.floor(32 / M)), FN = Math.max(1, Math.floor(32 / N));
  const BK = K * Math.max(1, Math.floor(32 / K));
  const rb = shape.result === 'f32' ? 4 : 2;
  for (const [SR, SC] of [[2, 2], [2, 1], [1, 1]] as const) {
    const WG = SR * SC * dev.subgroupMaxSize;
    const BM = SR * FM * M, BN = SC * FN * N;
    const bytes = 2 * (BM * BK + BK * BN) + rb * BM * BN;
    if (WG <= dev.maxInvocations && bytes <= dev.maxWorkgroupStorage) return { shape, FM, FN, SR, SC, BM, BN, BK, WG, bytes };
  }
  return null;
}

const gathered = (op: MatmulOperand) => (op as { gather?: unknown }).gather !== undefined;

/** Whether `k` can run on subgroup matrices at all: both operands f16, read directly (not gathered). */
export function subgroupMatrixOperands(k: MatmulKernel): boolean {
  return k.inputs[k.a.buf]?.dtype === 'f16' && k.inputs[k.b.buf]?.dtype === 'f16' && !gathered(k.a) && !gathered(k.b);
}

/** The kernel's epilogue as a WGSL function of the f32 accumulator and the output indices. */
function epilogueFn(k: MatmulKernel, half: boolean): { decl: string; helpers: string[]; loops: number } {
  const em = new ExprEmitter(k.inputs, new Set(), 1, half);
  const decl = epilogueDecl(k, em, half);
  return {
    decl,
    helpers: [...em.helpers],
    loops: k.epilogue ? loopIterations(k.epilogue) : 0,
  };
}

/**
 * WGSL for `k` on subgroup matrices of `shape`; throws when the operands or the device do not
 * allow it. `half`: f16 buffers are array<f16> (the backend's devices with 'shader-f16').
 */
export function renderSubgroupMatrixMatmul(
  k: MatmulKernel, shape: SubgroupMatrixShape, dev: SubgroupMatrixDevice, maxPerDim: number, half = false,
): RenderedKernel {
  if (!subgroupMatrixOperands(k)) throw new RheoError(`matmul '${k.name}': subgroup matrices need two f16 operands read directly`);
  const plan = planSubgroupMatrix(shape, dev);
  if (!plan) throw new RheoError(`matmul '${k.name}': no subgroup-matrix tiling of ${shape.M}x${shape.N}x${shape.K} fits this device`);
  const { FM, FN, SC, BM, BN, BK, WG } = plan;
  const { M: Mf, N: Nf, K: Kf, result: RT } = shape;
  const { m: M, n: N, k: K, a, b } = k;
  const nb = k.batch.length;
  const batches = k.batch.reduce((x, y) => x * y, 1);
  const yBlocks = Math.ceil(M / BM), xBlocks = Math.ceil(N / BN);
  const yz = yBlocks * batches;
  const bindings = bindingTypes(k.inputs, k.out.dtype, new Set(), half);
  if (M * N * batches === 0) return { passes: [], bindings, loopIterations: 0 };
  const y = Math.min(yz, maxPerDim), z = Math.ceil(yz / y);
  if (xBlocks > maxPerDim || z > maxPerDim) throw new RheoError(`matmul '${k.name}' is too large to dispatch on this device`);

  const ep = epilogueFn(k, half);
  const L: string[] = [];
  const e = (s: string) => L.push(`  ${s}`);
  e(`let yz = i32(wid.y + wid.z * ${y}u);`);
  e(`if (yz >= ${yz}i) { return; }`);
  e(`let col0 = i32(wid.x) * ${BN}i;`);
  e(`let row0 = (yz % ${yBlocks}i) * ${BM}i;`);
  e(`let bt = yz / ${yBlocks}i;`);
  let aBase = `${a.offset}i`, bBase = `${b.offset}i`, inner = 1;
  for (let i = nb - 1; i >= 0; i--) {
    const d = k.batch[i]!;
    e(`let i${i}: i32 = ${d === 1 ? '0i' : `(bt / ${inner}i) % ${d}i`};`);
    inner *= d;
    if (a.batchStrides[i]) aBase += ` + i${i} * ${a.batchStrides[i]}i`;
    if (b.batchStrides[i]) bBase += ` + i${i} * ${b.batchStrides[i]}i`;
  }
  e(`let aBase: i32 = ${aBase};`);
  e(`let bBase: i32 = ${bBase};`);
  e(`let oBase: i32 = bt * ${M * N}i;`);
  e('let lid = i32(lidx);');
  // the subgroup's block of fragments; a workgroup of smaller subgroups than the adapter's most
  // has more of them than blocks, and the extra ones only stage tiles
  e(`let mine = sid < ${plan.SR * SC}u;`);
  e(`let fr = (sid / ${SC}u) * ${FM * Mf}u;`);
  e(`let fc = (sid % ${SC}u) * ${FN * Nf}u;`);
  const frag = (i: number, j: number) => `acc${i}_${j}`;
  for (let i = 0; i < FM; i++) for (let j = 0; j < FN; j++) e(`var ${frag(i, j)} = subgroup_matrix_result<${RT}, ${Nf}, ${Mf}>();`);
  const loadA = (r: string, c: string) => convert(`in${a.buf}[aBase + ${r} * ${a.rowStride}i + ${c} * ${a.colStride}i]`, k.inputs[a.buf]!.dtype, 'f32');
  const loadB = (r: string, c: string) => convert(`in${b.buf}[bBase + ${r} * ${b.rowStride}i + ${c} * ${b.colStride}i]`, k.inputs[b.buf]!.dtype, 'f32');
  e(`for (var k0: i32 = 0i; k0 < ${K}i; k0 = k0 + ${BK}i) {`);
  // stage the tiles (addresses clamped, values zeroed past the edges)
  e(`  for (var t: i32 = lid; t < ${BM * BK}i; t = t + ${WG}i) {`);
  e(`    let r = row0 + t / ${BK}i;`);
  e(`    let c = k0 + t % ${BK}i;`);
  e(`    tA[t] = select(0.0h, f16(${loadA(`min(r, ${M - 1}i)`, `min(c, ${K - 1}i)`)}), r < ${M}i && c < ${K}i);`);
  e('  }');
  e(`  for (var t: i32 = lid; t < ${BK * BN}i; t = t + ${WG}i) {`);
  e(`    let r = k0 + t / ${BN}i;`);
  e(`    let c = col0 + t % ${BN}i;`);
  e(`    tB[t] = select(0.0h, f16(${loadB(`min(r, ${K - 1}i)`, `min(c, ${N - 1}i)`)}), r < ${K}i && c < ${N}i);`);
  e('  }');
  e('  workgroupBarrier();');
  e('  if (mine) {');
  for (let kk = 0; kk < BK; kk += Kf) {
    for (let i = 0; i < FM; i++) e(`    let a${kk}_${i} = subgroupMatrixLoad<subgroup_matrix_left<f16, ${Kf}, ${Mf}>, row_major>(&tA, (fr + ${i * Mf}u) * ${BK}u + ${kk}u, ${BK}u);`);
    for (let j = 0; j < FN; j++) e(`    let b${kk}_${j} = subgroupMatrixLoad<subgroup_matrix_right<f16, ${Nf}, ${Kf}>, row_major>(&tB, ${kk * BN}u + fc + ${j * Nf}u, ${BN}u);`);
    for (let i = 0; i < FM; i++) for (let j = 0; j < FN; j++) e(`    ${frag(i, j)} = subgroupMatrixMultiplyAccumulate(a${kk}_${i}, b${kk}_${j}, ${frag(i, j)});`);
  }
  e('  }');
  e('  workgroupBarrier();');
  e('}');
  e('if (mine) {');
  for (let i = 0; i < FM; i++) for (let j = 0; j < FN; j++) e(`  subgroupMatrixStore<row_major>(&tC, (fr + ${i * Mf}u) * ${BN}u + fc + ${j * Nf}u, ${frag(i, j)}, ${BN}u);`);
  e('}');
  e('workgroupBarrier();');
  // the epilogue on the way out, each invocation a strided share of the tile
  const bv = Array.from({ length: nb }, (_, i) => `i${i}`);
  e(`for (var t: i32 = lid; t < ${BM * BN}i; t = t + ${WG}i) {`);
  e(`  let row = row0 + t / ${BN}i;`);
  e(`  let col = col0 + t % ${BN}i;`);
  e(`  if (row < ${M}i && col < ${N}i) { out[oBase + row * ${N}i + col] = epilogue(${['f32(tC[t])', ...bv, 'row', 'col'].join(', ')}); }`);
  e('}');

  const code = `enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
// a subgroup's fragments are chosen by its subgroup_id: subgroup-uniform, which is what the
// builtins need, though the analysis proves workgroup uniformity only
diagnostic(off, chromium_experimental.subgroup_matrix_uniformity);
${[...ep.helpers, ...declareBindings(k.inputs, k.out.dtype, new Set(), half)].join('\n')}
var<workgroup> tA: array<f16, ${BM * BK}>;
var<workgroup> tB: array<f16, ${BK * BN}>;
var<workgroup> tC: array<${RT}, ${BM * BN}>;

${ep.decl}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lidx: u32, @builtin(subgroup_id) sid: u32) {
${L.join('\n')}
}
`;
  return {
    passes: [{ code, workgroups: [xBlocks, y, z] }],
    bindings,
    loopIterations: Math.ceil(K / BK) * Math.ceil((BM * BK) / WG) + Math.ceil((BM * BN) / WG) * (1 + ep.loops),
  };
}
