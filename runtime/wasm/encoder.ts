// A small WebAssembly module encoder: function bodies written instruction by instruction
// (`Code`), and modules of those functions importing one memory and a few host functions
// (`encodeModule`). Enough for rheo's generated kernels; it is not an assembler for the whole
// language (no tables, globals, data segments or multi-value blocks).

export type ValType = 'i32' | 'i64' | 'f32' | 'f64' | 'v128';

const VALTYPE: Record<ValType, number> = { i32: 0x7f, i64: 0x7e, f32: 0x7d, f64: 0x7c, v128: 0x7b };

function uleb(out: number[], v: number): void {
  do {
    let b = v & 0x7f;
    v = Math.floor(v / 128);
    if (v !== 0) b |= 0x80;
    out.push(b);
  } while (v !== 0);
}

function sleb(out: number[], v: number): void {
  v |= 0;
  for (;;) {
    const b = v & 0x7f;
    v >>= 7;
    if ((v === 0 && (b & 0x40) === 0) || (v === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return;
    }
    out.push(b | 0x80);
  }
}

const f64buf = new DataView(new ArrayBuffer(8));

/** Opcodes of the core instruction set used here. */
export const Op = {
  unreachable: 0x00, block: 0x02, loop: 0x03, if: 0x04, else: 0x05, end: 0x0b, br: 0x0c, brIf: 0x0d,
  return: 0x0f, call: 0x10, drop: 0x1a, select: 0x1b,
  i32Load: 0x28, f32Load: 0x2a, f64Load: 0x2b, i32Load8u: 0x2d,
  i32Store: 0x36, f32Store: 0x38, f64Store: 0x39, i32Store8: 0x3a,
  i32Eqz: 0x45, i32Eq: 0x46, i32Ne: 0x47, i32LtS: 0x48, i32LtU: 0x49, i32GtS: 0x4a, i32GtU: 0x4b, i32LeS: 0x4c, i32GeS: 0x4e,
  f64Eq: 0x61, f64Ne: 0x62, f64Lt: 0x63, f64Gt: 0x64, f64Le: 0x65, f64Ge: 0x66,
  i32Add: 0x6a, i32Sub: 0x6b, i32Mul: 0x6c, i32DivS: 0x6d, i32RemS: 0x6f, i32And: 0x71, i32Or: 0x72, i32Xor: 0x73,
  i32Shl: 0x74, f32Add: 0x92, i32ShrS: 0x75, i32ShrU: 0x76,
  f64Abs: 0x99, f64Neg: 0x9a, f64Ceil: 0x9b, f64Floor: 0x9c, f64Trunc: 0x9d, f64Nearest: 0x9e, f64Sqrt: 0x9f,
  f64Add: 0xa0, f64Sub: 0xa1, f64Mul: 0xa2, f64Div: 0xa3, f64Min: 0xa4, f64Max: 0xa5,
  i32WrapI64: 0xa7, f32DemoteF64: 0xb6, f64ConvertI32S: 0xb7, f64ConvertI32U: 0xb8, f64PromoteF32: 0xbb,
} as const;

/** SIMD128 opcodes (after the 0xfd prefix). */
export const Simd = {
  load: 0x00, load32Splat: 0x09, store: 0x0b, i32x4Splat: 0x11, f32x4Splat: 0x13,
  f32x4ExtractLane: 0x1f,
  i32x4Eq: 0x37, i32x4Ne: 0x38,
  f32x4Eq: 0x41, f32x4Ne: 0x42, f32x4Lt: 0x43, f32x4Gt: 0x44, f32x4Le: 0x45, f32x4Ge: 0x46,
  not: 0x4d, and: 0x4e, andnot: 0x4f, or: 0x50, xor: 0x51, bitselect: 0x52,
  store32Lane: 0x5a, load32Zero: 0x5c,
  i8x16NarrowI16x8U: 0x66, f32x4Ceil: 0x67, f32x4Floor: 0x68, f32x4Nearest: 0x6a,
  i16x8NarrowI32x4U: 0x86, i16x8ExtendLowI8x16U: 0x89, i32x4ExtendLowI16x8U: 0xa9,
  i32x4Add: 0xae, i32x4Sub: 0xb1, i32x4Mul: 0xb5,
  f32x4Abs: 0xe0, f32x4Neg: 0xe1, f32x4Sqrt: 0xe3, f32x4Add: 0xe4, f32x4Sub: 0xe5, f32x4Mul: 0xe6,
  f32x4Div: 0xe7, f32x4Min: 0xe8, f32x4Max: 0xe9, f32x4Pmin: 0xea, f32x4Pmax: 0xeb,
  i32x4TruncSatF32x4S: 0xf8, f32x4ConvertI32x4S: 0xfa,
  f32x4RelaxedMadd: 0x105,
} as const;

/** A function body under construction. Locals are numbered after the parameters. */
export class Code {
  readonly bytes: number[] = [];
  private readonly locals: ValType[] = [];

  constructor(readonly params: readonly ValType[], readonly result: ValType | null = null) {}

  /** a new local of type `t`; returns its index */
  local(t: ValType): number {
    this.locals.push(t);
    return this.params.length + this.locals.length - 1;
  }

  op(...ops: number[]): this {
    this.bytes.push(...ops);
    return this;
  }

  get(i: number): this { return this.op(0x20).u(i); }
  set(i: number): this { return this.op(0x21).u(i); }
  tee(i: number): this { return this.op(0x22).u(i); }
  i32(v: number): this { this.bytes.push(0x41); sleb(this.bytes, v); return this; }
  f64(v: number): this {
    f64buf.setFloat64(0, v, true);
    this.bytes.push(0x44);
    for (let i = 0; i < 8; i++) this.bytes.push(f64buf.getUint8(i));
    return this;
  }
  f32(v: number): this {
    f64buf.setFloat32(0, v, true);
    this.bytes.push(0x43);
    for (let i = 0; i < 4; i++) this.bytes.push(f64buf.getUint8(i));
    return this;
  }
  f32x4(v: number): this {
    this.bytes.push(0xfd);
    uleb(this.bytes, 0x0c);
    f64buf.setFloat32(0, v, true);
    for (let l = 0; l < 4; l++) for (let i = 0; i < 4; i++) this.bytes.push(f64buf.getUint8(i));
    return this;
  }
  u(v: number): this { uleb(this.bytes, v); return this; }
  /** a memory access: opcode, alignment (log2 bytes), offset */
  mem(opcode: number, align: number, offset = 0): this { return this.op(opcode).u(align).u(offset); }
  simd(opcode: number): this { this.bytes.push(0xfd); uleb(this.bytes, opcode); return this; }
  simdMem(opcode: number, align: number, offset = 0): this { return this.simd(opcode).u(align).u(offset); }
  /** 0xfc-prefixed instructions (saturating truncation, bulk memory) */
  misc(opcode: number, ...imm: number[]): this { this.bytes.push(0xfc); uleb(this.bytes, opcode); this.bytes.push(...imm); return this; }
  block(t: ValType | null = null): this { return this.op(Op.block, t ? VALTYPE[t] : 0x40); }
  loop(): this { return this.op(Op.loop, 0x40); }
  if(t: ValType | null = null): this { return this.op(Op.if, t ? VALTYPE[t] : 0x40); }
  else(): this { return this.op(Op.else); }
  end(): this { return this.op(Op.end); }
  br(depth: number): this { return this.op(Op.br).u(depth); }
  brIf(depth: number): this { return this.op(Op.brIf).u(depth); }
  call(fn: number): this { return this.op(Op.call).u(fn); }

  /** for (i = from; i < to; i += step) body — `from`/`to` push one i32 each */
  for(i: number, from: () => void, to: () => void, step: number, body: () => void): this {
    from();
    this.set(i);
    this.block().loop();
    this.get(i);
    to();
    this.op(Op.i32GeS).brIf(1);
    body();
    this.get(i).i32(step).op(Op.i32Add).set(i).br(0);
    this.end().end();
    return this;
  }

  /** the encoded body: local declarations, instructions, end */
  encode(): number[] {
    const out: number[] = [];
    const groups: [number, ValType][] = [];
    for (const t of this.locals) {
      const last = groups[groups.length - 1];
      if (last && last[1] === t) last[0]++;
      else groups.push([1, t]);
    }
    uleb(out, groups.length);
    for (const [n, t] of groups) {
      uleb(out, n);
      out.push(VALTYPE[t]);
    }
    out.push(...this.bytes, Op.end);
    const sized: number[] = [];
    uleb(sized, out.length);
    return sized.concat(out);
  }
}

export interface ImportedFunction {
  readonly module: string;
  readonly name: string;
  readonly params: readonly ValType[];
  readonly result: ValType | null;
}

export interface ModuleSpec {
  /** the imported memory `env.memory`: its minimum pages, maximum pages and whether it is shared */
  readonly memory: { readonly min: number; readonly max: number; readonly shared: boolean } | null;
  /** host functions, indexed before the module's own functions */
  readonly imports: readonly ImportedFunction[];
  readonly functions: readonly Code[];
  /** export name -> function index (imports count) */
  readonly exports: Readonly<Record<string, number>>;
}

function section(out: number[], id: number, body: number[]): void {
  out.push(id);
  uleb(out, body.length);
  out.push(...body);
}

function name(out: number[], s: string): void {
  const b = new TextEncoder().encode(s);
  uleb(out, b.length);
  out.push(...b);
}

function funcType(params: readonly ValType[], result: ValType | null): string {
  return `${params.join(',')}->${result ?? ''}`;
}

/** The bytes of a module. */
export function encodeModule(spec: ModuleSpec): Uint8Array {
  const types: string[] = [];
  const typeOf = (params: readonly ValType[], result: ValType | null): number => {
    const key = funcType(params, result);
    let i = types.indexOf(key);
    if (i < 0) i = types.push(key) - 1;
    return i;
  };
  const importTypes = spec.imports.map((f) => typeOf(f.params, f.result));
  const fnTypes = spec.functions.map((f) => typeOf(f.params, f.result));

  const out: number[] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  const typeSec: number[] = [];
  uleb(typeSec, types.length);
  for (const key of types) {
    const [ps, r] = key.split('->') as [string, string];
    const params = ps ? (ps.split(',') as ValType[]) : [];
    typeSec.push(0x60);
    uleb(typeSec, params.length);
    for (const p of params) typeSec.push(VALTYPE[p]);
    if (r) typeSec.push(1, VALTYPE[r as ValType]);
    else typeSec.push(0);
  }
  section(out, 1, typeSec);

  const imp: number[] = [];
  uleb(imp, spec.imports.length + (spec.memory ? 1 : 0));
  spec.imports.forEach((f, i) => {
    name(imp, f.module);
    name(imp, f.name);
    imp.push(0x00);
    uleb(imp, importTypes[i]!);
  });
  if (spec.memory) {
    name(imp, 'env');
    name(imp, 'memory');
    imp.push(0x02, spec.memory.shared ? 0x03 : 0x01);
    uleb(imp, spec.memory.min);
    uleb(imp, spec.memory.max);
  }
  section(out, 2, imp);

  const fns: number[] = [];
  uleb(fns, fnTypes.length);
  for (const t of fnTypes) uleb(fns, t);
  section(out, 3, fns);

  const exp: number[] = [];
  const entries = Object.entries(spec.exports);
  uleb(exp, entries.length);
  for (const [n, idx] of entries) {
    name(exp, n);
    exp.push(0x00);
    uleb(exp, idx);
  }
  section(out, 7, exp);

  const code: number[] = [];
  uleb(code, spec.functions.length);
  for (const f of spec.functions) code.push(...f.encode());
  section(out, 10, code);
  return new Uint8Array(out);
}
