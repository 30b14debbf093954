// Kernel IR -> WGSL compute shaders. Map kernels get one invocation per output element, or one
// workgroup per element when their reductions are long (the workgroup splits the loop and combines
// in workgroup memory), or, when long reductions have few outputs, many workgroups per element and
// a second pass over their partial results (render-wgsl-reduce.ts). Scatter-add copies the base, then gives each (outer, inner) column one
// invocation that adds rows in order: no float atomics, and the CPU backend's order of additions.
// Matmul is in render-wgsl-matmul.ts, expressions in wgsl-expr.ts. Source text only: compiling and
// dispatching belong to backend.ts.

import type { DType } from '../../graphs/types.js';
import { RheoError } from '../../graphs/errors.js';
import { numel } from '../../graphs/types.js';
import { stridesOf, type Expr, type Kernel, type MapKernel, type ScatterAddKernel } from '../../ops/kernel-ir.js';
import { renderMatmul, type MatmulVariant, type RegisterTileChoice, type WorkgroupTile } from './render-wgsl-matmul.js';
import { renderMatmulReduce, type MatmulReduceTile } from './render-wgsl-matmul-reduce.js';
import { renderMapVec4, vectorizable } from './render-wgsl-vec4.js';
import { DEFAULT_REDUCE, renderSplitReduce, type ReduceVariant } from './render-wgsl-reduce.js';
import { renderSubgroupMatrixMatmul, type SubgroupMatrixDevice, type SubgroupMatrixShape } from './render-wgsl-subgroup-matrix.js';
import {
  ENABLE_F16, ExprEmitter, bindingTypes, convert, declareBindings, fromStorage, grid, literal, loopIterations, toStorage,
} from './wgsl-expr.js';

/** WGSL did not accept a generated kernel; carries the kernel's name and the whole source. */
export class KernelCompileError extends RheoError {
  constructor(
    readonly kernel: string,
    readonly messages: readonly string[],
    readonly source: string,
  ) {
    super(
      `kernel '${kernel}' failed to compile to WGSL:\n${messages.join('\n')}\n--- generated WGSL ---\n` +
        numbered(source),
    );
  }
}

function numbered(src: string): string {
  return src.split('\n').map((l, i) => `${String(i + 1).padStart(4)}| ${l}`).join('\n');
}

export interface RenderOptions {
  /** which matmul kernel to render (see render-wgsl-matmul.ts, render-wgsl-subgroup-matrix.ts); default 'workgroup' */
  readonly matmul?: MatmulVariant | 'subgroup-matrix';
  /** 'subgroup-matrix': the adapter's config to multiply in, and what the device allows */
  readonly subgroupMatrix?: { readonly shape: SubgroupMatrixShape; readonly device: SubgroupMatrixDevice };
  /** invocations per workgroup for map and scatter kernels; default 64 */
  readonly workgroupSize?: number;
  /** the device's maxComputeWorkgroupsPerDimension; default 65535 */
  readonly maxWorkgroupsPerDimension?: number;
  /** map kernels compute four outputs per invocation where they can (render-wgsl-vec4.ts); default true */
  readonly vectorize?: boolean;
  /** the register matmul's tile per output shape (default `registerTile`) */
  readonly registerTile?: RegisterTileChoice;
  /** the workgroup matmul's shape (default 16x16 invocations, BK 16) */
  readonly workgroupTile?: WorkgroupTile;
  /** split-K matmul: k elements per chunk (default `splitKChunk`) */
  readonly kChunk?: number;
  /** a matmul with a fused reduction: its tile and column groups (render-wgsl-matmul-reduce.ts; default `defaultMatmulReduceTile`) */
  readonly matmulReduce?: MatmulReduceTile;
  /** how long reductions with few outputs split over workgroups (render-wgsl-reduce.ts) */
  readonly reduce?: ReduceVariant;
  /** storage buffers one kernel may bind (a split reduction binds a scratch buffer too); default 8 */
  readonly maxStorageBuffers?: number;
  /**
   * the device has 'shader-f16': f16 tensors are array<f16> (2 bytes an element) and f16 matmuls
   * multiply in f16; without it they are f32 words holding binary16 values (stores round with
   * quantizeToF16). Default false.
   */
  readonly shaderF16?: boolean;
}

export interface KernelPass {
  readonly code: string;
  /** workgroups to dispatch in x, y, z */
  readonly workgroups: readonly [number, number, number];
}

export interface RenderedKernel {
  /** dispatched in order with the same bindings; empty when the output is empty */
  readonly passes: readonly KernelPass[];
  /** the WGSL element type of each input binding, then of the output */
  readonly bindings: readonly string[];
  /** an upper bound on the loop iterations of one invocation (llvmpipe stops at 65535) */
  readonly loopIterations: number;
  /**
   * u32 words of a scratch buffer the passes share, bound read-write after the output (binding
   * inputs + 1); absent when the kernel needs none
   */
  readonly scratchWords?: number;
}

/** WGSL source and dispatch sizes for one kernel. */
export function renderWgsl(kernel: Kernel, opts: RenderOptions = {}): RenderedKernel {
  const half = opts.shaderF16 === true && [kernel.out, ...kernel.inputs].some((p) => p.dtype === 'f16');
  const r = renderKernel(kernel, opts, half);
  const enable = (code: string) => (code.startsWith(ENABLE_F16) ? code : `${ENABLE_F16}\n${code}`);
  return half ? { ...r, passes: r.passes.map((p) => ({ ...p, code: enable(p.code) })) } : r;
}

function renderKernel(kernel: Kernel, opts: RenderOptions, half: boolean): RenderedKernel {
  const maxDim = opts.maxWorkgroupsPerDimension ?? 65535;
  switch (kernel.kind) {
    case 'map': {
      const wg = opts.workgroupSize ?? 64;
      // a forced split applies to every reduction it can split; 'auto' only to long ones
      const split = typeof opts.reduce?.split === 'number' || cooperative(kernel.expr, numel(kernel.out.shape))
        ? renderSplitReduce(kernel, opts.reduce ?? DEFAULT_REDUCE, wg, maxDim, opts.maxStorageBuffers ?? 8, half)
        : null;
      return split ?? renderMap(kernel, wg, maxDim, opts.vectorize !== false, half);
    }
    case 'scatterAdd': return renderScatterAdd(kernel, opts.workgroupSize ?? 64, maxDim, half);
    case 'matmul':
      if (kernel.reduce) return renderMatmulReduce(kernel, maxDim, opts.matmulReduce, half, opts.maxStorageBuffers);
      if (opts.matmul === 'subgroup-matrix') {
        if (!opts.subgroupMatrix) throw new RheoError(`matmul '${kernel.name}': the subgroup-matrix kernel needs the adapter's config`);
        return renderSubgroupMatrixMatmul(kernel, opts.subgroupMatrix.shape, opts.subgroupMatrix.device, maxDim, half);
      }
      return renderMatmul(kernel, opts.matmul ?? 'workgroup', maxDim, {
        tile: opts.registerTile, workgroupTile: opts.workgroupTile, kChunk: opts.kChunk, maxStorageBuffers: opts.maxStorageBuffers, half,
      });
  }
}

/** Invocations that share one output element's reductions. */
const COOP_WG = 64;

/**
 * Whether a map kernel's reductions should be shared by a workgroup per output element: when one
 * invocation would loop long (slow everywhere, and wrong on llvmpipe past 65535 iterations), or
 * when there are few outputs to spread over the device anyway.
 */
function cooperative(expr: Expr, outputs: number): boolean {
  const work = loopIterations(expr);
  return work >= 4096 || (outputs <= 4096 && work >= 256);
}

function renderMap(k: MapKernel, wg: number, maxDim: number, vectorize: boolean, half: boolean): RenderedKernel {
  const total = numel(k.out.shape);
  const coop = cooperative(k.expr, total);
  if (!coop && vectorize && vectorizable(k)) return renderMapVec4(k, wg, maxDim, half);
  const size = coop ? COOP_WG : wg;
  const workgroups = grid(coop ? total : Math.ceil(total / wg), maxDim);
  const em = new ExprEmitter(k.inputs, new Set(), 1, half);
  if (coop) {
    em.coop = { wg: COOP_WG };
    // the workgroup is uniform: its early return keeps the barriers of the reductions legal
    em.emit(`let flat = wid.x + wid.y * ${workgroups[0]}u;`);
    em.emit(`if (flat >= ${total}u) { return; }`);
    em.emit('let lid = i32(lidx);');
  } else {
    em.emit(`let flat = gid.x + gid.y * ${workgroups[0] * wg}u;`);
    em.emit(`if (flat >= ${total}u) { return; }`);
  }
  em.emit('let f = i32(flat);');
  const st = stridesOf(k.out.shape);
  k.out.shape.forEach((d, i) => {
    const q = st[i] === 1 ? 'f' : `(f / ${st[i]}i)`;
    em.emit(`let i${i}: i32 = ${d === 1 ? '0i' : i === 0 ? q : `${q} % ${d}i`};`);
    em.bindVar(`i${i}`, `i${i}`);
  });
  const v = toStorage(convert(em.value(k.expr), k.expr.dtype, k.out.dtype), k.out.dtype, half);
  em.emit(coop ? `if (lid == 0i) { out[flat] = ${v}; }` : `out[flat] = ${v};`);
  const builtins = coop
    ? '@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lidx: u32'
    : '@builtin(global_invocation_id) gid: vec3<u32>';
  const code = `${[...em.helpers, ...declareBindings(k.inputs, k.out.dtype, new Set(), half), ...em.shared].join('\n')}

@compute @workgroup_size(${size})
fn main(${builtins}) {
${em.lines.join('\n')}
}
`;
  return {
    passes: total === 0 ? [] : [{ code, workgroups }],
    bindings: bindingTypes(k.inputs, k.out.dtype, new Set(), half),
    loopIterations: loopIterations(k.expr, coop ? COOP_WG : 0),
  };
}

/** Rows one scatter-add pass adds, so that no invocation loops past llvmpipe's limit. */
const SCATTER_ROWS_PER_PASS = 32768;

function renderScatterAdd(k: ScatterAddKernel, wg: number, maxDim: number, half: boolean): RenderedKernel {
  const d = k.out.dtype;
  const total = numel(k.out.shape);
  const types = bindingTypes(k.inputs, d, new Set(), half);
  if (total === 0) return { passes: [], bindings: types, loopIterations: 0 };
  if (k.outer * k.outRows * k.inner !== total) {
    throw new RheoError(`scatter-add kernel '${k.name}': outer*outRows*inner != output size ${total}`);
  }
  const em = new ExprEmitter(k.inputs, new Set(), 1, half);
  const decls = declareBindings(k.inputs, d, new Set(), half).join('\n');
  const main = (groups: readonly number[], body: string) => `${decls}

@compute @workgroup_size(${wg})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let flat = gid.x + gid.y * ${groups[0]! * wg}u;${body}
}
`;
  const passes: { code: string; workgroups: [number, number, number] }[] = [];
  // pass 1: out = base (or zeros)
  const g1 = grid(Math.ceil(total / wg), maxDim);
  const base = k.base >= 0 ? convert(em.load(k.base, 'o'), k.inputs[k.base]!.dtype, d) : literal(0, d);
  passes.push({ code: main(g1, `
  if (flat >= ${total}u) { return; }
  let o = i32(flat);
  out[o] = ${toStorage(base, d, half)};`), workgroups: g1 });
  // then rows in order, a chunk per pass; bool scatter-add is an or (add in i32, store x != 0)
  const cols = k.outer * k.inner;
  const g2 = grid(Math.ceil(cols / wg), maxDim);
  const ad: DType = d === 'bool' ? 'i32' : d;
  const idx = convert(em.load(k.indices, 'r'), k.inputs[k.indices]!.dtype, 'i32');
  const u = convert(em.load(k.updates, `ucol0 + r * ${k.inner}i`), k.inputs[k.updates]!.dtype, ad);
  const sum = toStorage(convert(`(${convert(fromStorage('out[o]', d, half), d, ad)} + u)`, ad, d), d, half);
  for (let r0 = 0; r0 < k.rows; r0 += SCATTER_ROWS_PER_PASS) {
    const r1 = Math.min(k.rows, r0 + SCATTER_ROWS_PER_PASS);
    passes.push({ code: main(g2, `
  if (flat >= ${cols}u) { return; }
  let c = i32(flat);
  let col0 = (c / ${k.inner}i) * ${k.outRows * k.inner}i + c % ${k.inner}i;
  let ucol0 = (c / ${k.inner}i) * ${k.rows * k.inner}i + c % ${k.inner}i;
  for (var r: i32 = ${r0}i; r < ${r1}i; r = r + 1i) {
    let o = col0 + clamp(${idx}, 0i, ${k.outRows - 1}i) * ${k.inner}i;
    let u = ${u};
    out[o] = ${sum};
  }`), workgroups: g2 });
  }
  return { passes, bindings: types, loopIterations: Math.min(k.rows, SCATTER_ROWS_PER_PASS) };
}
