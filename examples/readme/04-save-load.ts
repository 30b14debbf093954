import { graph, dim, f32, grad, compile, adam, tensor, summary, formatSummary } from 'rheo';
import { saveModel, loadModel } from 'rheo/node';

const B = dim('batch');
const mlp = graph('mlp', (g) => {
  const x = g.input('x', f32(B, 784));
  const y = g.input('y', f32(B, 10));
  const w1 = g.param('w1', f32(784, 256), g.init.he());
  const b1 = g.param('b1', f32(256), g.init.zeros());
  const w2 = g.param('w2', f32(256, 10), g.init.he());
  const b2 = g.param('b2', f32(10), g.init.zeros());
  const logits = g.add(g.matmul(g.relu(g.add(g.matmul(x, w1), b1)), w2), b2);
  return { logits, loss: g.softmaxCrossEntropy(logits, y) };
});

const x = tensor(Float32Array.from({ length: 32 * 784 }, () => Math.random()), [32, 784]);
const y = tensor(Float32Array.from({ length: 32 * 10 }, (_, i) => (i % 10 === Math.floor(i / 10) % 10 ? 1 : 0)), [32, 10]);
const step = compile(grad(mlp, 'loss'), { optimizer: adam(1e-3) });
for (let i = 0; i < 5; i++) step.runSync({ x, y });

// The model graph and its trained params (no optimizer state) go to a directory
console.log(`saved to ${await saveModel('out/mlp-model', mlp, step)}`);

// ... and come back ready for inference, on any backend
const { graph: model, params } = loadModel('out/mlp-model');
const infer = compile(model);
infer.setVariables(params);
const { logits } = infer.runSync({ x }, ['logits']);
const trained = step.runSync({ x, y }, ['logits'], { update: false }).logits;
console.log(`loaded predictions equal the trained model's: ${logits.data.every((v, i) => v === trained.data[i])}`);

console.log(formatSummary(summary(model, { x: [32, 784] }, { outputs: ['logits'] })));
