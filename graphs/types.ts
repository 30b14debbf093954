// Tensor types live below the graph IR, in ops/types.ts (ops/ needs them and must not import
// graphs/); re-exported here for the graph layer.
export * from '../ops/types.js';
