// The few WebAssembly JS API types the wasm device uses: the project's TypeScript libs (ES2022,
// no DOM) do not declare the `WebAssembly` namespace, though Node and browsers have it.

export interface WasmMemory {
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
  grow(pages: number): number;
}
/** a compiled module (opaque; structured-cloneable to workers) */
export interface WasmModule {
  readonly __wasmModule?: never;
}
export interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Memory: new (d: { initial: number; maximum?: number; shared?: boolean }) => WasmMemory;
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (m: WasmModule, imports: object) => { readonly exports: Record<string, unknown> };
}

/** the engine's WebAssembly API, or null where there is none */
export function wasmApi(): WasmApi | null {
  return (globalThis as { WebAssembly?: WasmApi }).WebAssembly ?? null;
}
