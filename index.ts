// rheo's public API: build typed graphs, differentiate them, compile and run them once,
// reactively on rxjs streams, or as training steps.

export { dim, f32, f16, i32, bool, numel } from './graphs/types.js';
export type { DType, Dim, Shape, Tensor, TensorType } from './graphs/types.js';
export { graph, extend, init, Builder } from './graphs/builder.js';
export type { Init } from './graphs/builder.js';
export type { Graph, Node, Attrs, Update } from './graphs/graph.js';
export { grad, gradName } from './graphs/autodiff.js';
export { sgd, adam, adamw, applyOptimizer } from './graphs/optim.js';
export type { Optimizer } from './graphs/optim.js';
export { toJSON, fromJSON } from './graphs/serialize.js';
export { toDot } from './graphs/dot.js';
export { RheoError, ShapeError, DTypeError, UnknownOpError, FeedError, GraphError } from './graphs/errors.js';
export { allOps } from './ops/registry.js';
export { planGraph } from './scheduler/plan.js';
export type { Plan, Step } from './scheduler/plan.js';
export { compile, Executable } from './runtime/executor.js';
export type { CompileOptions, Feeds, Outputs } from './runtime/executor.js';
export { reactive } from './runtime/reactive.js';
export type { ReactiveRun, ReactiveResult } from './runtime/reactive.js';
export { tensor, toNested } from './runtime/tensor.js';
export type { HostTensor } from './runtime/tensor.js';
