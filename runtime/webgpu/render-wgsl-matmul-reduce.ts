// Matmuls with a fused reduction (MatmulKernel.reduce) in WGSL: the product's elements pass
// through the epilogue and are reduced over the trailing dims, and the product itself is never
// written. Pass 1 is the register kernel's accumulation (render-wgsl-matmul.ts) in workgroups of
// WX x WY invocations over blocks of WY·TM rows; each workgroup walks every `groups`-th block of
// WX·TN columns, folding each finished tile into one running value per row, and the WX values of
// a row are combined in workgroup memory, left to right. With one column group and only n
// reduced, that value is the result (post applied) and there is no second pass; otherwise pass 1
// writes one value per (group, batch, row) to the scratch buffer, and pass 2 reduces each
// output's values in a fixed order (one invocation per output where there are few, a workgroup
// tree where there are many) and applies `post`. Every order is fixed, so results repeat exactly.
// Gathered operands are not taken here (kernel construction gives them a buffer first).

import { RheoError } from '../../graphs/errors.js';
import type { MatmulKernel, MatmulReduce } from '../../ops/kernel-ir.js';
import type { RenderedKernel } from './render-wgsl.js';
import { registerParts, registerTile, registerTileLoop, type RegisterTile } from './render-wgsl-matmul.js';
import { ExprEmitter, bindingTypes, grid, loopIterations } from './wgsl-expr.js';

/** How a fused matmul reduction is rendered: the register tile, and how many column groups share a row. */
export interface MatmulReduceTile extends RegisterTile {
  readonly groups: number;
}

/** Pass 2 gives each output a workgroup of this many invocations when it reduces more values than this. */
const COOP = 64;

/**
 * The default shape: the register kernel's tile, and enough column groups that about 256
 * workgroups run (never more groups than column blocks).
 */
export function defaultMatmulReduceTile(k: MatmulKernel): MatmulReduceTile {
  const t = registerTile(k.m, k.n);
  return { ...t, groups: reduceGroups(k, t, 256) };
}

/** Column groups so that pass 1 runs about `target` workgroups. */
export function reduceGroups(k: MatmulKernel, t: RegisterTile, target: number): number {
  const batches = k.batch.reduce((a, b) => a * b, 1);
  const rowBlocks = Math.ceil(k.m / (t.wy * t.tm)) * batches;
  const colBlocks = Math.ceil(k.n / (t.wx * t.tn));
  return Math.max(1, Math.min(colBlocks, Math.ceil(target / Math.max(1, rowBlocks))));
}

const identity = (op: MatmulReduce['op']) => (op === 'sum' ? '0.0f' : op === 'max' ? 'mr_f32_bits(0xff800000u)' : 'mr_f32_bits(0x7f800000u)');
const combine = (op: MatmulReduce['op'], a: string, b: string) => (op === 'sum' ? `${a} + ${b}` : `${op}(${a}, ${b})`);
const BITS_FN = 'fn mr_f32_bits(b: u32) -> f32 { return bitcast<f32>(b); }';

/**
 * WGSL for a matmul with a fused reduction. Where the scratch buffer would bind one storage
 * buffer more than `maxStorageBuffers` allows, a reduction over n alone runs in one column group
 * (one pass); planning never makes a wider one there.
 */
export function renderMatmulReduce(
  k: MatmulKernel, maxPerDim: number, tile: MatmulReduceTile = defaultMatmulReduceTile(k), half = false, maxStorageBuffers = 8,
): RenderedKernel {
  const red = k.reduce;
  if (!red) throw new RheoError(`matmul '${k.name}' has no fused reduction`);
  if (k.a.gather || k.b.gather) throw new RheoError(`matmul '${k.name}': a fused reduction cannot read gathered operands`);
  if (k.out.dtype !== 'f32') throw new RheoError(`matmul '${k.name}': a fused reduction writes f32, not ${k.out.dtype}`);
  const P = registerParts(k, half);
  const { m: M, n: N } = k;
  const nb = k.batch.length;
  const { tm: TM, tn: TN, wx: WX, wy: WY } = tile;
  const BM = WY * TM, BN = WX * TN;
  const rowBlocks = Math.ceil(M / BM);
  const colBlocks = Math.ceil(N / BN);
  const scratchFits = k.inputs.length + 2 <= maxStorageBuffers;
  if (!scratchFits && red.keep <= nb) throw new RheoError(`matmul '${k.name}': a reduction past n needs a scratch buffer, one more than the ${maxStorageBuffers} storage buffers this device binds`);
  const G = scratchFits ? Math.max(1, Math.min(tile.groups, colBlocks)) : 1;
  const batches = P.batches;
  const single = G === 1 && red.keep === nb + 1;
  const rows = [...Array(TM).keys()], cols = [...Array(TN).keys()];
  const outs = k.out.shape.reduce((a, b) => a * b, 1);

  // post(v, i0, ...): the output's value from the reduced one, at the output's index
  const pem = new ExprEmitter(k.inputs, P.vec4, 1, half);
  pem.acc = 'acc';
  const rank = k.out.shape.length;
  const postParams = ['acc: f32'];
  for (let i = 0; i < rank; i++) {
    pem.bindVar(`i${i}`, `i${i}`);
    postParams.push(`i${i}: i32`);
  }
  pem.emit(`return ${red.post ? pem.value(red.post) : 'acc'};`);
  const postHelpers = [...pem.helpers].filter((h) => !P.prelude.includes(h));
  const postFn = `${postHelpers.join('\n')}\nfn post(${postParams.join(', ')}) -> f32 {\n${pem.lines.join('\n')}\n}`;
  const postLoops = red.post ? loopIterations(red.post) : 0;
  const epiLoops = P.epilogueLoops;
  // the output's index variables from its linear index `q`
  const decodeOut = (q: string) => {
    let inner = 1;
    const lines: string[] = [];
    for (let i = rank - 1; i >= 0; i--) {
      const d = k.out.shape[i]!;
      lines.push(`let i${i}: i32 = ${d === 1 ? '0i' : `(${q} / ${inner}i) % ${d}i`};`);
      inner *= d;
    }
    return lines;
  };
  const postCall = (v: string) => `post(${[v, ...Array.from({ length: rank }, (_, i) => `i${i}`)].join(', ')})`;

  // ---- pass 1
  const { lines: tileLines, iterations } = registerTileLoop(k, P, tile);
  const bv = Array.from({ length: nb }, (_, i) => `i${i}`);
  const L: string[] = [];
  for (const r of rows) L.push(`var red${r}: f32 = ${identity(red.op)};`);
  L.push(`for (var cb: i32 = i32(wid.x); cb < ${colBlocks}i; cb = cb + ${G}i) {`);
  L.push(`  let col0: i32 = cb * ${BN}i + i32(lid.x) * ${TN}i;`);
  L.push(...tileLines.map((l) => `  ${l}`));
  for (const r of rows) {
    L.push(`  if (row0 + ${r}i < ${M}i) {`);
    for (const j of cols) {
      const v = `epilogue(${[`acc${r}_${j >> 2}[${j & 3}]`, ...bv, `(row0 + ${r}i)`, `(col0 + ${j}i)`].join(', ')})`;
      L.push(`    if (col0 + ${j}i < ${N}i) { red${r} = ${combine(red.op, `red${r}`, v)}; }`);
    }
    L.push('  }');
  }
  L.push('}');
  // the WX values of each row, combined left to right
  for (const r of rows) L.push(`part[(i32(lid.y) * ${TM}i + ${r}i) * ${WX}i + i32(lid.x)] = red${r};`);
  L.push('workgroupBarrier();');
  L.push(`if (lid.x == 0u) {`);
  for (const r of rows) {
    L.push(`  if (row0 + ${r}i < ${M}i) {`);
    L.push(`    var v = part[(i32(lid.y) * ${TM}i + ${r}i) * ${WX}i];`);
    L.push(`    for (var x: i32 = 1i; x < ${WX}i; x = x + 1i) { v = ${combine(red.op, 'v', `part[(i32(lid.y) * ${TM}i + ${r}i) * ${WX}i + x]`)}; }`);
    if (single) {
      L.push(`    let q = bt * ${M}i + row0 + ${r}i;`);
      L.push(...decodeOut('q').map((l) => `    ${l}`));
      L.push(`    out[q] = ${postCall('v')};`);
    } else {
      L.push(`    scratch[(i32(wid.x) * ${batches}i + bt) * ${M}i + row0 + ${r}i] = v;`);
    }
    L.push('  }');
  }
  L.push('}');
  const scratchDecl = `@group(0) @binding(${k.inputs.length + 1}) var<storage, read_write> scratch: array<f32>;`;
  const yz = rowBlocks * batches;
  const y = Math.min(yz, maxPerDim);
  const z = Math.ceil(yz / y);
  if (z > maxPerDim || G > maxPerDim) throw new RheoError(`matmul '${k.name}': its fused reduction is too large to dispatch on this device`);
  const head = `${P.prelude}
${single ? '' : scratchDecl}
${BITS_FN}
${postFn}

${P.epilogue}`;
  const pass1 = `${head}

var<workgroup> part: array<f32, ${WX * WY * TM}>;

@compute @workgroup_size(${WX}, ${WY})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let yz = wid.y + wid.z * ${y}u;
  if (yz >= ${yz}u) { return; }
  let bt = i32(yz / ${rowBlocks}u);
${P.batchDecode('bt')}
  let row0: i32 = i32(yz % ${rowBlocks}u) * ${BM}i + i32(lid.y) * ${TM}i;
${L.map((l) => `  ${l}`).join('\n')}
}
`;
  const iter1 = Math.ceil(colBlocks / G) * (iterations + TM * TN * epiLoops) + WX + postLoops;
  if (single) {
    return {
      passes: yz === 0 ? [] : [{ code: pass1, workgroups: [G, y, z] }],
      bindings: bindingTypes(k.inputs, k.out.dtype, P.vec4, half),
      loopIterations: iter1,
    };
  }

  // ---- pass 2: output q reduces, for each group g, scratch[g·batches·M + q·per .. + per)
  const per = red.keep === nb + 1 ? 1 : k.batch.slice(red.keep).reduce((a, b) => a * b, 1) * M;
  const total = G * per;
  const coop = total > COOP;
  const fold = (acc: string, t: string) => `${acc} = ${combine(red.op, acc, `scratch[(${t} / ${per}i) * ${batches * M}i + q * ${per}i + ${t} % ${per}i]`)};`;
  const pass2 = coop
    ? `${head}

var<workgroup> tree: array<f32, ${COOP}>;

@compute @workgroup_size(${COOP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let q = i32(wid.x + wid.y * ${grid(outs, maxPerDim)[0]}u);
  var v: f32 = ${identity(red.op)};
  for (var t: i32 = i32(li); t < ${total}i; t = t + ${COOP}i) {
    ${fold('v', 't')}
  }
  tree[li] = v;
  workgroupBarrier();
  for (var s: u32 = ${COOP / 2}u; s > 0u; s = s >> 1u) {
    if (li < s) { tree[li] = ${combine(red.op, 'tree[li]', 'tree[li + s]')}; }
    workgroupBarrier();
  }
  if (li == 0u && q < ${outs}i) {
${decodeOut('q').map((l) => `    ${l}`).join('\n')}
    out[q] = ${postCall('tree[0]')};
  }
}
`
    : `${head}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let q = i32(gid.x + gid.y * ${grid(Math.ceil(outs / 64), maxPerDim)[0] * 64}u);
  if (q >= ${outs}i) { return; }
  var v: f32 = ${identity(red.op)};
  for (var t: i32 = 0i; t < ${total}i; t = t + 1i) {
    ${fold('v', 't')}
  }
${decodeOut('q').map((l) => `  ${l}`).join('\n')}
  out[q] = ${postCall('v')};
}
`;
  const g2 = coop ? grid(outs, maxPerDim) : grid(Math.ceil(outs / 64), maxPerDim);
  return {
    passes: yz === 0 || outs === 0 ? [] : [{ code: pass1, workgroups: [G, y, z] }, { code: pass2, workgroups: g2 }],
    bindings: bindingTypes(k.inputs, k.out.dtype, P.vec4, half),
    loopIterations: Math.max(iter1, Math.ceil(total / (coop ? COOP : 1)) + COOP + postLoops),
    scratchWords: G * batches * M,
  };
}

