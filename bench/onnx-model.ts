// Small ONNX models written as protobuf bytes by hand, for the ONNX Runtime peers: a square f32
// matmul and the elementwise chain. Only the few ModelProto fields these need are encoded (varints
// and length-delimited fields); it reads nothing and knows no other op.

/** A protobuf message under construction: fields appended in order. */
class Message {
  private readonly bytes: number[] = [];

  private varint(v: number): void {
    // non-negative values below 2^53 (field keys, lengths, dims, enums)
    while (v >= 0x80) {
      this.bytes.push((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    this.bytes.push(v);
  }

  int(field: number, v: number): this {
    this.varint(field * 8);
    this.varint(v);
    return this;
  }

  raw(field: number, data: Uint8Array | readonly number[]): this {
    this.varint(field * 8 + 2);
    this.varint(data.length);
    for (const b of data) this.bytes.push(b);
    return this;
  }

  str(field: number, s: string): this {
    return this.raw(field, new TextEncoder().encode(s));
  }

  msg(field: number, m: Message): this {
    return this.raw(field, m.bytes);
  }

  finish(): Uint8Array {
    return Uint8Array.from(this.bytes);
  }
}

const FLOAT = 1; // TensorProto.DataType.FLOAT
const IR_VERSION = 8;
const OPSET = 13;

/** ValueInfoProto of an f32 tensor */
function f32Value(name: string, dims: readonly number[]): Message {
  const shape = new Message();
  for (const d of dims) shape.msg(1, new Message().int(1, d));
  const tensorType = new Message().int(1, FLOAT).msg(2, shape);
  return new Message().str(1, name).msg(2, new Message().msg(1, tensorType));
}

/** TensorProto of an f32 scalar (an initializer) */
function f32Scalar(name: string, v: number): Message {
  return new Message().int(2, FLOAT).str(8, name).raw(9, new Uint8Array(Float32Array.of(v).buffer));
}

function node(op: string, inputs: readonly string[], output: string): Message {
  const m = new Message();
  for (const i of inputs) m.str(1, i);
  return m.str(2, output).str(3, `${op}_${output}`).str(4, op);
}

interface GraphSpec {
  readonly nodes: readonly Message[];
  readonly initializers?: readonly Message[];
  readonly inputs: readonly Message[];
  readonly outputs: readonly Message[];
}

function model(name: string, g: GraphSpec): Uint8Array {
  const graph = new Message();
  for (const n of g.nodes) graph.msg(1, n);
  graph.str(2, name);
  for (const t of g.initializers ?? []) graph.msg(5, t);
  for (const i of g.inputs) graph.msg(11, i);
  for (const o of g.outputs) graph.msg(12, o);
  return new Message()
    .int(1, IR_VERSION)
    .str(2, 'rheo-bench')
    .msg(7, graph)
    .msg(8, new Message().str(1, '').int(2, OPSET))
    .finish();
}

/** c = a·b for f32 n×n inputs `a`, `b`. */
export function matmulModel(n: number): Uint8Array {
  return model(`matmul${n}`, {
    nodes: [node('MatMul', ['a', 'b'], 'c')],
    inputs: [f32Value('a', [n, n]), f32Value('b', [n, n])],
    outputs: [f32Value('c', [n, n])],
  });
}

/** y = relu(x·a + b)·c + d over an f32 input `x` of n elements (a, b, c, d constants). */
export function chainModel(n: number, k: { a: number; b: number; c: number; d: number }): Uint8Array {
  return model('chain', {
    nodes: [node('Mul', ['x', 'a'], 't0'), node('Add', ['t0', 'b'], 't1'), node('Relu', ['t1'], 't2'), node('Mul', ['t2', 'c'], 't3'), node('Add', ['t3', 'd'], 'y')],
    initializers: [f32Scalar('a', k.a), f32Scalar('b', k.b), f32Scalar('c', k.c), f32Scalar('d', k.d)],
    inputs: [f32Value('x', [n])],
    outputs: [f32Value('y', [n])],
  });
}
