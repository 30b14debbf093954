import { graph, dim, f32, grad, compile, adam, tensor } from 'rheo';

const B = dim('batch');
const mlp = graph('mlp', (g) => {
  const x = g.input('x', f32(B, 784));
  const y = g.input('y', f32(B, 10));                  // one-hot labels
  const w1 = g.param('w1', f32(784, 256), g.init.he());
  const w2 = g.param('w2', f32(256, 10), g.init.he());
  const h = g.relu(g.matmul(x, w1));                   // Tensor<'f32', ['batch', 256]>
  const logits = g.matmul(h, w2);                      // g.matmul(x, w2) does not compile
  return { logits, loss: g.softmaxCrossEntropy(logits, y) };
});

// A batch of 128 random "images", each labelled with one of the 10 classes
const xs = Float32Array.from({ length: 128 * 784 }, () => Math.random());
const ys = new Float32Array(128 * 10);
for (let i = 0; i < 128; i++) ys[i * 10 + (i % 10)] = 1;

const step = compile(grad(mlp, 'loss'), { optimizer: adam(1e-3) });
for (let i = 1; i <= 20; i++) {
  const { loss } = step.runSync({ x: tensor(xs, [128, 784]), y: tensor(ys, [128, 10]) });
  if (i % 5 === 0) console.log(`step ${i}: loss ${loss.data[0].toFixed(4)}`);
}
