// The typed errors live below the graph IR, in ops/errors.ts (ops/ raises them and must not
// import graphs/); re-exported here for the graph layer.
export * from '../ops/errors.js';
