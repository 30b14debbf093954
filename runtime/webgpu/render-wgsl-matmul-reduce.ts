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
import {
  DEFAULT_WORKGROUP_TILE, registerParts, registerTile, registerTileLoop, workgroupParts, workgroupTileLoop,
  type Parts, type RegisterTile, type WorkgroupTile,
} from './render-wgsl-matmul.js';
import { ExprEmitter, bindingTypes, grid, loopIterations } from './wgsl-expr.js';

/**
 * How a fused matmul reduction is rendered: how many column groups share a row, and the
 * accumulation — the register kernel's tile, or (`workgroup`) the workgroup kernel's tiles
 * through workgroup memory, the usual shape for real GPUs.
 */
export type MatmulReduceTile =
  | (RegisterTile & { readonly groups: number })
  | { readonly workgroup: WorkgroupTile; readonly groups: number };

/** Pass 2 gives each output a workgroup of this many invocations when it reduces more values than this. */
const COOP = 64;

/**
 * The default shape: the workgroup kernel's 16x16 tiles where `workgroup` (as for plain matmuls
 * on GPUs), with enough column groups that about 2048 workgroups run, so that a GPU's many cores
 * each hold several; else the register kernel's tile, with about 256 workgroups (a software
 * adapter runs a few at a time). Never more groups than column blocks.
 */
export function defaultMatmulReduceTile(k: MatmulKernel, workgroup = false): MatmulReduceTile {
  if (workgroup) return { workgroup: DEFAULT_WORKGROUP_TILE, groups: reduceGroups(k, blockOf({ workgroup: DEFAULT_WORKGROUP_TILE, groups: 1 }), 2048) };
  const t = registerTile(k.m, k.n);
  return { ...t, groups: reduceGroups(k, blockOf({ ...t, groups: 1 }), 256) };
}

/** The rows and columns of the product one workgroup computes at a time. */
export function blockOf(t: MatmulReduceTile): { rows: number; cols: number } {
  if ('workgroup' in t) return { rows: 4 * t.workgroup.wt, cols: 4 * t.workgroup.wt };
  return { rows: t.wy * t.tm, cols: t.wx * t.tn };
}

/** Column groups so that pass 1 runs about `target` workgroups. */
export function reduceGroups(k: MatmulKernel, block: { rows: number; cols: number }, target: number): number {
  const batches = k.batch.reduce((a, b) => a * b, 1);
  const rowBlocks = Math.ceil(k.m / block.rows) * batches;
  const colBlocks = Math.ceil(k.n / block.cols);
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
  const wg = 'workgroup' in tile ? tile.workgroup : null;
  const P = wg ? workgroupParts(k, { ...wg, vec4Store: false }, half) : registerParts(k, half);
  const { m: M, n: N } = k;
  const nb = k.batch.length;
  const acc = accumulation(k, P, tile);
  const { wx: WX, rowsPer: TM } = acc;
  const { rows: BM, cols: BN } = blockOf(tile);
  const rowBlocks = Math.ceil(M / BM);
  const colBlocks = Math.ceil(N / BN);
  const scratchFits = k.inputs.length + 2 <= maxStorageBuffers;
  if (!scratchFits && red.keep <= nb) throw new RheoError(`matmul '${k.name}': a reduction past n needs a scratch buffer, one more than the ${maxStorageBuffers} storage buffers this device binds`);
  const G = scratchFits ? Math.max(1, Math.min(tile.groups, colBlocks)) : 1;
  const batches = P.batches;
  const single = G === 1 && red.keep === nb + 1;
  const rows = [...Array(TM).keys()];
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
  const bv = Array.from({ length: nb }, (_, i) => `i${i}`);
  const L: string[] = [];
  for (const r of rows) L.push(`var red${r}: f32 = ${identity(red.op)};`);
  L.push(`for (var cb: i32 = i32(wid.x); cb < ${colBlocks}i; cb = cb + ${G}i) {`);
  L.push(...acc.lines.map((l) => `  ${l}`));
  for (const r of rows) {
    L.push(`  if (${acc.row(r)} < ${M}i) {`);
    for (const [value, col] of acc.values(r)) {
      const v = `epilogue(${[value, ...bv, `(${acc.row(r)})`, `(${col})`].join(', ')})`;
      L.push(`    if (${col} < ${N}i) { red${r} = ${combine(red.op, `red${r}`, v)}; }`);
    }
    L.push('  }');
  }
  L.push('}');
  // the WX values of each row, combined left to right
  for (const r of rows) L.push(`part[(${acc.local(r)}) * ${WX}i + i32(lid.x)] = red${r};`);
  L.push('workgroupBarrier();');
  L.push(`if (lid.x == 0u) {`);
  for (const r of rows) {
    L.push(`  if (${acc.row(r)} < ${M}i) {`);
    L.push(`    var v = part[(${acc.local(r)}) * ${WX}i];`);
    L.push(`    for (var x: i32 = 1i; x < ${WX}i; x = x + 1i) { v = ${combine(red.op, 'v', `part[(${acc.local(r)}) * ${WX}i + x]`)}; }`);
    if (single) {
      L.push(`    let q = bt * ${M}i + ${acc.row(r)};`);
      L.push(...decodeOut('q').map((l) => `    ${l}`));
      L.push(`    out[q] = ${postCall('v')};`);
    } else {
      L.push(`    scratch[(i32(wid.x) * ${batches}i + bt) * ${M}i + ${acc.row(r)}] = v;`);
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

var<workgroup> part: array<f32, ${BM * WX}>;
${acc.decls}

@compute @workgroup_size(${WX}, ${acc.wy})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let yz = wid.y + wid.z * ${y}u;
  if (yz >= ${yz}u) { return; }
  let bt = i32(yz / ${rowBlocks}u);
${P.batchDecode('bt')}
  let rowBlock: i32 = i32(yz % ${rowBlocks}u);
${acc.setup.map((l) => `  ${l}`).join('\n')}
${L.map((l) => `  ${l}`).join('\n')}
}
`;
  const iter1 = Math.ceil(colBlocks / G) * (acc.iterations + acc.perRow * TM * epiLoops) + WX + postLoops;
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


/**
 * One way to accumulate a block of the product, seen from one invocation: `setup` (given
 * `rowBlock`, before the column loop) and `lines` (given `cb`, the column block, inside it) leave
 * `rowsPer` rows of `perRow` products; `row(r)` is row r's index in the product, `local(r)` its
 * index in the workgroup's block, and `values(r)` its products with their column indices.
 */
interface Accumulation {
  readonly wx: number;
  readonly wy: number;
  readonly rowsPer: number;
  readonly perRow: number;
  readonly decls: string;
  readonly setup: readonly string[];
  readonly lines: readonly string[];
  readonly iterations: number;
  row(r: number): string;
  local(r: number): string;
  values(r: number): [string, string][];
}

function accumulation(k: MatmulKernel, P: Parts, tile: MatmulReduceTile): Accumulation {
  if ('workgroup' in tile) {
    const wt = tile.workgroup.wt, BT = 4 * wt;
    const { lines, tiles, colOf, iterations } = workgroupTileLoop(k, P, { ...tile.workgroup, vec4Store: false }, false);
    return {
      wx: wt, wy: wt, rowsPer: 4, perRow: 4, decls: tiles, iterations,
      setup: [`let rowB: i32 = rowBlock * ${BT}i;`, 'let lx = i32(lid.x);', 'let ly = i32(lid.y);', `let tid = ly * ${wt}i + lx;`],
      lines: [`let colB: i32 = cb * ${BT}i;`, ...lines],
      row: (r) => `rowB + ly + ${r * wt}i`,
      local: (r) => `ly + ${r * wt}i`,
      values: (r) => [0, 1, 2, 3].map((c) => [`acc${r}[${c}]`, `colB + ${colOf(c)}`] as [string, string]),
    };
  }
  const { tm, tn, wx, wy } = tile;
  const { lines, iterations } = registerTileLoop(k, P, tile);
  return {
    wx, wy, rowsPer: tm, perRow: tn, decls: '', iterations,
    setup: [`let row0: i32 = rowBlock * ${wy * tm}i + i32(lid.y) * ${tm}i;`],
    lines: [`let col0: i32 = cb * ${wx * tn}i + i32(lid.x) * ${tn}i;`, ...lines],
    row: (r) => `row0 + ${r}i`,
    local: (r) => `i32(lid.y) * ${tm}i + ${r}i`,
    values: (r) => Array.from({ length: tn }, (_, j) => [`acc${r}_${j >> 2}[${j & 3}]`, `col0 + ${j}i`] as [string, string]),
  };
}
