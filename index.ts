// rheo's public API: build typed graphs, differentiate them, compile and run them once,
// reactively on rxjs streams, or as training steps.

export { dim, f32, f16, i32, bool, numel } from './graphs/types.js';
export type { DType, Dim, Shape, Tensor, TensorType } from './graphs/types.js';
export { graph, extend, init, Builder } from './graphs/builder.js';
export type { Init } from './graphs/builder.js';
export type { Graph, Node, Attrs, Update } from './graphs/graph.js';
export { grad, gradName } from './graphs/autodiff.js';
export type { GradOptions } from './graphs/autodiff.js';
export { sgd, adam, adamw, applyOptimizer, warmup, cosine, stepDecay } from './graphs/optim.js';
export type { Optimizer, CommonOptions, Schedule } from './graphs/optim.js';
export { toJSON, fromJSON } from './graphs/serialize.js';
export { toDot } from './graphs/dot.js';
// Graph rewriting: one engine, rule sets as passes (CSE, constant folding, algebra, contraction order)
export { optimizeGraph, defaultPasses, simplifyRules, runPass } from './graphs/rewrite/passes.js';
export type { Pass, OptimizeOptions, OptimizeResult } from './graphs/rewrite/passes.js';
export { rewriteGraph, searchRewrite, rewriteHighlights, rule } from './graphs/rewrite/engine.js';
export type { Rule, RuleContext, RewriteRecord, RewriteResult, FixpointOptions, SearchOptions } from './graphs/rewrite/engine.js';
export { pat, match, fillValue } from './graphs/rewrite/pattern.js';
export type { Pattern, Match } from './graphs/rewrite/pattern.js';
export { cseRules } from './graphs/rewrite/cse.js';
export { foldRules } from './graphs/rewrite/fold.js';
export { algebraRules, matmulAssociationRules } from './graphs/rewrite/algebra.js';
export { einsumRules, einsumOrderRules, contractionOrder, pathFlops } from './graphs/rewrite/contraction.js';
export type { ContractionOrder, OrderOptions, EinsumRuleOptions } from './graphs/rewrite/contraction.js';
export { flops, bytes, paramCount, costFunction } from './graphs/rewrite/cost.js';
export type { CostModel, SymbolicSizes } from './graphs/rewrite/cost.js';
export { einsumNode, leftToRightPath } from './ops/einsum.js';
export type { ContractionPath } from './ops/einsum.js';

export { RheoError, ShapeError, DTypeError, UnknownOpError, FeedError, GraphError } from './graphs/errors.js';
export { allOps } from './ops/registry.js';
export { planGraph, planLaunches } from './scheduler/plan.js';
export type { Plan, PlanOptions, PlannedBuffer } from './scheduler/plan.js';
export { validateSteps, PlanError } from './scheduler/steps.js';
export type { PlanStep, LaunchStep, FreeStep, SendStep, RecvStep, CollectiveStep, CollectiveOp, BufferId, DeviceId } from './scheduler/steps.js';
export { split, broadcast, partialSum, SbpError, localShape, groupOf, boxingCost } from './scheduler/parallel/sbp.js';
export type { Sbp, NdSbp, Mesh } from './scheduler/parallel/sbp.js';
export { sbpSignatures } from './scheduler/parallel/sbp-signatures.js';
export type { Signature } from './scheduler/parallel/sbp-signatures.js';
export { propagateSbp } from './scheduler/parallel/sbp-propagate.js';
export type { SbpAnnotations, SbpAssignment } from './scheduler/parallel/sbp-propagate.js';
export { planSharded, collectiveCounts } from './scheduler/parallel/sbp-lower.js';
export type { ShardedPlan, DevicePlan } from './scheduler/parallel/sbp-lower.js';
export { dataParallel } from './scheduler/parallel/sbp-data.js';
export type { DataParallelOptions } from './scheduler/parallel/sbp-data.js';
export { runSharded, shardOf, assemble } from './runtime/sbp-runner.js';
export type { ShardedRun } from './runtime/sbp-runner.js';
export type { DeviceCaps } from './scheduler/caps.js';
export type { RematInfo } from './scheduler/remat-info.js';
export { HostDevice } from './runtime/device.js';
export type { Device, DeviceMemory, HostTraffic } from './runtime/device.js';
export { compile, compileAsync, Executable, BackendError, OutputError } from './runtime/executor.js';
export { exportTuning, importTuning, TuningError } from './runtime/webgpu/tuner.js';
export { parseBytes } from './runtime/memory.js';
export type { CompileOptions, RunOptions, Feeds, Outputs, BackendName, BackendInfo, RunStats } from './runtime/executor.js';
export { NumericsError } from './runtime/numerics.js';
export { reactive } from './runtime/reactive.js';
export type { ReactiveRun, ReactiveResult } from './runtime/reactive.js';
export { tensor, toNested } from './runtime/tensor.js';
export { f16round } from './ops/f16.js';
export type { HostTensor } from './runtime/tensor.js';

// Streaming online training: trainer, sources, operators, snapshots, checkpoints. This entry runs
// in browsers too: checkpoint files on disk are 'rheo/node' (train() loads them itself for
// `checkpoint: { dir }`), and the Redis Streams source is 'rheo/redis', which loads a client.
export { train, stepSeed } from './runtime/train/trainer.js';
export type { TrainOptions, CheckpointOptions, StepEvent, TrainRun } from './runtime/train/trainer.js';
export { BoundedQueue, POLICIES } from './runtime/train/queue.js';
export type { BackpressurePolicy } from './runtime/train/queue.js';
export { fromReadable, simulated, pullPipe, withToken, tokenOf, batchSizeOf } from './runtime/train/sources.js';
export type { Batch as TrainBatch, Source, SourceLike, ResumableSource } from './runtime/train/sources.js';
export { shuffleWindow, batchOf, stack } from './runtime/train/operators.js';
export { takeSnapshot, captureSnapshot, predictWith } from './runtime/train/snapshots.js';
export type { Snapshot, Prediction } from './runtime/train/snapshots.js';
export { evaluate, evaluateRecorded, accuracy } from './runtime/train/evaluate.js';
export type { EvalOptions, EvalResult } from './runtime/train/evaluate.js';
export { CheckpointError, encodeSafetensors, decodeSafetensors } from './runtime/train/safetensors.js';
export { restoreCheckpoint } from './runtime/train/checkpoint-store.js';
export type { CheckpointStore } from './runtime/train/checkpoint-store.js';
export type { Checkpoint, CheckpointState, LoadedCheckpoint, StreamPosition, RngState } from './runtime/train/checkpoint.js';

// Models for inference: a graph's params apart from training state, and a summary of a graph's
// params and costs. Saving and loading model directories is in 'rheo/node'.
export { paramsOf, ModelError } from './runtime/model.js';
export type { WeightSource, VariableValues } from './runtime/model.js';
export { summary, formatSummary } from './scheduler/summary.js';
export type { GraphSummary, ParamSummary, StepCost, SummaryOptions } from './scheduler/summary.js';

// Types that appear in the signatures above, for annotations (and so the API reference links them)
export type { CpuArray } from './runtime/cpu/render-js.js';
export type { Feed } from './runtime/executor.js';
export type { RematOptions } from './scheduler/remat-plan.js';
export type { MemoryPlan } from './scheduler/memory.js';
export type { BufferRole } from './scheduler/plan.js';
export type { Safetensors } from './runtime/train/safetensors.js';
export type { RematResult } from './scheduler/remat/planner.js';
export type { RematPlan, RematStats } from './scheduler/remat/plan-types.js';
export type { RematSchedule, RematStep } from './scheduler/remat/schedule.js';
export type { CostGraph, CostNode } from './scheduler/remat/cost-graph.js';
export type { BroadcastShape, MatmulShape } from './graphs/types.js';
export type { AttrValue } from './graphs/graph.js';
export type { DotOptions } from './graphs/dot.js';
export type { StartInfo } from './runtime/train/trainer.js';
export type { AlsFitterOptions } from './runtime/tn-fit.js';

// Memory budgets
export { BudgetError } from './scheduler/remat/plan-types.js';
export { planRematerialization } from './scheduler/remat/planner.js';
export { loadExactSolver } from './scheduler/remat/highs.js';
export type { PlannerOptions } from './scheduler/remat/planner.js';

// Tensor-network structure search: networks as einsum graphs, the search strategies (graphs/tn)
// and the ALS fitter that fits candidates with rheo.
export { tensorTrain, tensorRing, tucker, fullyConnected, generalNetwork, paramCount as networkParamCount, ranksOf, withRanks, coreShape, contractNetwork } from './graphs/tn/network.js';
export type { TensorNetwork, TnEdge, TnFamily } from './graphs/tn/network.js';
export { greedySearch, tnaleSearch, oneShotSearch, searchStructure } from './graphs/tn/search.js';
export type { SearchOptions as StructureSearchOptions, SearchResult as StructureSearchResult, SearchStrategy, TnaleOptions, OneShotOptions } from './graphs/tn/search.js';
export type { TnFit, TnFitter, FitOptions } from './graphs/tn/fit-types.js';
export { replaceParamByNetwork, coreParamName } from './graphs/tn/replace.js';
export { alsFitter, reconstruct as reconstructNetwork } from './runtime/tn-fit.js';
// pipeline parallelism: stages, schedules as data, the simulator, a host executor
export { partitionPipeline, stageTransfers, PipelineError } from './scheduler/parallel/pipeline-partition.js';
export type { PipelineProgram, PipelineStage, CutTensor, PartitionOptions } from './scheduler/parallel/pipeline-partition.js';
export { gpipe, oneFOneB, interleaved1F1B, zbH1, validateSchedule, ScheduleError } from './scheduler/parallel/pipeline-schedule.js';
export type { PipelineSchedule, PipelineOp, PipelinePass, ScheduleKind } from './scheduler/parallel/pipeline-schedule.js';
export { simulatePipeline } from './scheduler/parallel/simulator.js';
export type { Simulation, StageCost, Hardware as PipelineHardware, DeviceReport, SimulateOptions } from './scheduler/parallel/simulator.js';
export { predictGpt, gptParams } from './scheduler/parallel/pipeline-gpt.js';
export type { GptModel, GptLayout, GptPrediction, MeshHardware } from './scheduler/parallel/pipeline-gpt.js';
export { HostPipeline } from './runtime/pipeline-host.js';
export type { HostPipelineOptions, HostPipelineStep } from './runtime/pipeline-host.js';
