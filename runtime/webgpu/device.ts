/// <reference types="webgpu" />
// Finding a WebGPU device: `navigator.gpu` in browsers, the `webgpu` package (Dawn) in Node, with
// limits raised to what the adapter offers and device loss / uncaptured errors turned into typed
// errors. On a machine without a GPU, Dawn runs on Mesa's llvmpipe through OpenGL ES
// (compatibility mode). This module owns no buffers and renders no kernels.

import { RheoError } from '../../graphs/errors.js';

/** The device failed: lost, out of memory, or an internal / validation error we did not expect. */
export class DeviceError extends RheoError {
  constructor(
    readonly kind: 'lost' | 'validation' | 'out-of-memory' | 'internal' | 'unavailable',
    detail: string,
  ) {
    super(`WebGPU device ${kind}: ${detail}`);
  }
}

export interface WebGpuAdapterInfo {
  readonly vendor: string;
  readonly architecture: string;
  readonly device: string;
  readonly description: string;
  /** 'core' or 'compatibility' */
  readonly featureLevel: string;
  /** which Dawn backend, or 'navigator.gpu' (a browser's, or one a Node program installed) */
  readonly backend: string;
  /** true for software adapters (llvmpipe, SwiftShader, lavapipe): they want other kernels */
  readonly isCpu: boolean;
}

/** A shape the adapter multiplies subgroup matrices in (`GPUAdapterInfo.subgroupMatrixConfigs`). */
export interface SubgroupMatrixConfig {
  readonly componentType: string;
  readonly resultComponentType: string;
  readonly M: number;
  readonly N: number;
  readonly K: number;
}

/** The Dawn feature behind subgroup matrices (experimental; in Node, Dawn lists it only with unsafe APIs allowed). */
export const SUBGROUP_MATRIX_FEATURE = 'chromium-experimental-subgroup-matrix';

/** A device plus what the renderers need to know about it. */
export interface WebGpuDevice {
  readonly device: GPUDevice;
  readonly adapter: GPUAdapter;
  readonly info: WebGpuAdapterInfo;
  /** 'shader-f16' when offered (and then enabled), plus the adapter's other features */
  readonly features: ReadonlySet<string>;
  readonly limits: GPUSupportedLimits;
  /** the adapter's largest subgroup (0 when it does not say) */
  readonly subgroupMaxSize: number;
  /** the adapter's subgroup-matrix shapes when the device has SUBGROUP_MATRIX_FEATURE; else empty */
  readonly subgroupMatrixConfigs: readonly SubgroupMatrixConfig[];
  /**
   * The first uncaptured error or loss since the last call, as a typed error; null when healthy.
   * Backends call this at synchronization points (reads) and throw what it returns.
   */
  takeError(): DeviceError | null;
  /** Set once the device is lost; every later use fails with this error. */
  readonly lost: DeviceError | null;
  destroy(): void;
}

/** A one-line description of an adapter, e.g. `llvmpipe-llvm-15-0-6-256-bits- (OpenGL ES 3.2 Mesa 22.3.6; opengles, compatibility)`. */
export function describeAdapterInfo(i: WebGpuAdapterInfo): string {
  const name = [i.vendor, i.device].filter(Boolean).join(' ') || i.description || 'unknown adapter';
  const detail = [i.description !== name ? i.description.replace(/^OpenGL version /, '') : '', `${i.backend}, ${i.featureLevel}`].filter(Boolean).join('; ');
  return `${name} (${detail})`;
}

/**
 * The adapter itself, not how it was reached: vendor, architecture, device and description, e.g.
 * `llvmpipe-llvm-15-0-6-256-bits- (OpenGL ES 3.2 Mesa 22.3.6)`. The tuning table files choices
 * under it, so the same adapter found through Dawn or through an installed `navigator.gpu` (or at
 * another feature level) shares them.
 */
export function adapterIdentity(i: WebGpuAdapterInfo): string {
  const name = [i.vendor, i.architecture, i.device].filter(Boolean).join(' ') || i.description || 'unknown adapter';
  const detail = i.description !== name ? i.description.replace(/^OpenGL version /, '') : '';
  return detail ? `${name} (${detail})` : name;
}

/** Why no device could be found (a printable reason), when acquireWebGpu returns null. */
export let lastAcquireFailure = '';

/** Limits we raise to the adapter's maximum when it offers more than the defaults. */
const RAISED_LIMITS = [
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupStorageSize',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxBindingsPerBindGroup',
] as const;

interface AdapterCandidate {
  readonly backend: string;
  readonly gpu: GPU;
  readonly options: GPURequestAdapterOptions;
}

// Dawn's instance must outlive every device made from it.
const keepAlive: GPU[] = [];

/**
 * A device with raised limits, or null (see `lastAcquireFailure`) when this platform has no
 * WebGPU adapter. In Node, `RHEO_WEBGPU_BACKEND` (`vulkan`, `metal`, `d3d12`, `opengles`) forces a
 * Dawn backend; by default a native backend is tried where a GPU is visible, then OpenGL ES.
 * `RHEO_WEBGPU_UNSAFE_APIS=1` starts Dawn with its unsafe APIs allowed (`allow_unsafe_apis`),
 * which its experimental features need, subgroup matrices among them; off by default, as those
 * APIs have not had the safety review of the rest.
 *
 * ```ts
 * const gpu = await acquireWebGpu();
 * if (gpu) console.log(gpu.info.description, [...gpu.features]);
 * ```
 */
export async function acquireWebGpu(): Promise<WebGpuDevice | null> {
  const reasons: string[] = [];
  for (const c of await candidates(reasons)) {
    let adapter: GPUAdapter | null = null;
    try {
      adapter = await c.gpu.requestAdapter(c.options);
    } catch (e) {
      reasons.push(`${c.backend}: requestAdapter threw ${(e as Error).message}`);
      continue;
    }
    if (!adapter) {
      reasons.push(`${c.backend}: no adapter`);
      continue;
    }
    try {
      return await openDevice(adapter, c);
    } catch (e) {
      reasons.push(`${c.backend}: requestDevice failed: ${(e as Error).message}`);
    }
  }
  lastAcquireFailure = reasons.join('; ') || 'no WebGPU implementation in this environment';
  return null;
}

/**
 * The `GPU` object `acquireWebGpu` would use here (in Node: Dawn with the backend it would pick),
 * with `requestAdapter` adding the options that backend needs (compatibility mode on OpenGL ES):
 * a `navigator.gpu` for libraries that look for one there. Null when there is no adapter.
 *
 * ```ts
 * const gpu = await navigatorGpu();
 * if (gpu) (globalThis as { navigator?: object }).navigator = { gpu };
 * ```
 */
/** Where a `navigatorGpu()` object keeps the options it adds (so that info can report them). */
const ADDED_OPTIONS = Symbol('adapter options');

export async function navigatorGpu(): Promise<GPU | null> {
  const reasons: string[] = [];
  for (const c of await candidates(reasons)) {
    const adapter = await c.gpu.requestAdapter(c.options).catch(() => null);
    if (!adapter) continue;
    const gpu = c.gpu;
    return {
      [ADDED_OPTIONS]: c.options,
      requestAdapter: (o?: GPURequestAdapterOptions) => gpu.requestAdapter({ ...o, ...c.options }),
      getPreferredCanvasFormat: () => gpu.getPreferredCanvasFormat(),
      get wgslLanguageFeatures() {
        return gpu.wgslLanguageFeatures;
      },
      get __brand() {
        return 'GPU' as const;
      },
    } as GPU;
  }
  lastAcquireFailure = reasons.join('; ') || 'no WebGPU adapter';
  return null;
}

async function candidates(reasons: string[]): Promise<AdapterCandidate[]> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) {
    const added = (nav.gpu as { [ADDED_OPTIONS]?: GPURequestAdapterOptions })[ADDED_OPTIONS] ?? {};
    return [
      { backend: 'navigator.gpu', gpu: nav.gpu, options: { powerPreference: 'high-performance', ...added } },
      { backend: 'navigator.gpu', gpu: nav.gpu, options: { featureLevel: 'compatibility', ...added } },
    ];
  }
  const proc = (globalThis as { process?: NodeJS.Process }).process;
  if (!proc?.versions?.node) return [];
  // Mesa's EGL needs this to run without a display; it must be set before Dawn starts.
  proc.env.EGL_PLATFORM ??= 'surfaceless';
  let mod: { create(options: string[]): GPU; globals: object };
  try {
    const name = 'webgpu'; // a variable, so bundlers for the browser leave it alone
    mod = (await import(/* @vite-ignore */ name)) as typeof mod;
  } catch (e) {
    reasons.push(`the 'webgpu' package did not load: ${(e as Error).message}`);
    return [];
  }
  // Dawn's GPUBufferUsage, GPUShaderStage, ... are globals in browsers; make them so here.
  for (const [k, v] of Object.entries(mod.globals)) {
    if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  }
  const unsafe = proc.env.RHEO_WEBGPU_UNSAFE_APIS === '1' ? ['enable-dawn-features=allow_unsafe_apis'] : [];
  const make = (backend: string, flags: string[], options: GPURequestAdapterOptions): AdapterCandidate => {
    const gpu = mod.create([...flags, ...unsafe]);
    keepAlive.push(gpu);
    return { backend, gpu, options };
  };
  const forced = proc.env.RHEO_WEBGPU_BACKEND;
  const gles = () => make('opengles', ['backend=opengles'], { featureLevel: 'compatibility' });
  const native = (b: string) => make(b, [`backend=${b}`], { powerPreference: 'high-performance' });
  if (forced) return [forced === 'opengles' ? gles() : native(forced)];
  const out: AdapterCandidate[] = [];
  if (proc.platform === 'darwin') out.push(native('metal'));
  else if (proc.platform === 'win32') out.push(native('d3d12'));
  else if (await gpuVisible()) out.push(native('vulkan'));
  if (proc.platform === 'linux') out.push(gles());
  return out;
}

/** Whether a Linux machine shows a GPU device node (so that trying Vulkan is worthwhile). */
async function gpuVisible(): Promise<boolean> {
  try {
    const fsName = 'node:fs';
    const fs = (await import(/* @vite-ignore */ fsName)) as typeof import('node:fs');
    if (fs.existsSync('/dev/nvidia0')) return true;
    return fs.existsSync('/dev/dri') && fs.readdirSync('/dev/dri').some((f) => f.startsWith('renderD'));
  } catch {
    return false;
  }
}

async function openDevice(adapter: GPUAdapter, c: AdapterCandidate): Promise<WebGpuDevice> {
  const requiredLimits: Record<string, number> = {};
  for (const name of RAISED_LIMITS) {
    const v = (adapter.limits as unknown as Record<string, number | undefined>)[name];
    if (typeof v === 'number') requiredLimits[name] = v;
  }
  const requiredFeatures: GPUFeatureName[] = [];
  if (adapter.features.has('shader-f16')) requiredFeatures.push('shader-f16');
  if (adapter.features.has('subgroups')) requiredFeatures.push('subgroups' as GPUFeatureName);
  if (adapter.features.has('timestamp-query')) requiredFeatures.push('timestamp-query');
  // subgroup matrices: f16 operands in workgroup memory need shader-f16 as well
  const matrices = ['shader-f16', 'subgroups', SUBGROUP_MATRIX_FEATURE].every((f) => adapter.features.has(f));
  if (matrices) requiredFeatures.push(SUBGROUP_MATRIX_FEATURE as GPUFeatureName);
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });

  const raw = adapter.info ?? ({} as GPUAdapterInfo);
  const text = `${raw.vendor ?? ''} ${raw.architecture ?? ''} ${raw.device ?? ''} ${raw.description ?? ''}`;
  const info: WebGpuAdapterInfo = {
    vendor: raw.vendor ?? '',
    architecture: raw.architecture ?? '',
    device: raw.device ?? '',
    description: raw.description ?? '',
    featureLevel: (adapter as { featureLevel?: string }).featureLevel ?? c.options.featureLevel ?? 'core',
    backend: c.backend,
    isCpu:
      (raw as { isFallbackAdapter?: boolean }).isFallbackAdapter === true ||
      /llvmpipe|lavapipe|softpipe|swiftshader/i.test(text),
  };

  let pending: DeviceError | null = null;
  let lost: DeviceError | null = null;
  device.addEventListener('uncapturederror', (ev) => {
    const err = (ev as GPUUncapturedErrorEvent).error;
    const name = err?.constructor?.name ?? '';
    const kind = /OutOfMemory/.test(name) ? 'out-of-memory' : /Validation/.test(name) ? 'validation' : 'internal';
    pending ??= new DeviceError(kind, err.message);
  });
  void device.lost.then((l) => {
    lost = new DeviceError('lost', `${l.reason}: ${l.message}`);
    pending ??= lost;
  });
  const features = new Set<string>(adapter.features as Iterable<string>);
  const extra = raw as { subgroupMaxSize?: number; subgroupMatrixConfigs?: readonly SubgroupMatrixConfig[] };
  return {
    device,
    adapter,
    info,
    features,
    limits: device.limits,
    subgroupMaxSize: extra.subgroupMaxSize ?? 0,
    subgroupMatrixConfigs: matrices ? [...(extra.subgroupMatrixConfigs ?? [])].map((c) => ({
      componentType: c.componentType, resultComponentType: c.resultComponentType, M: c.M, N: c.N, K: c.K,
    })) : [],
    takeError() {
      const e = pending;
      pending = lost;
      return e;
    },
    get lost() {
      return lost;
    },
    destroy() {
      device.destroy();
    },
  };
}
