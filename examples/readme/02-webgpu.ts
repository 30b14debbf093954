import { graph, dim, f32, grad, compileAsync, sgd, tensor } from 'rheo';

const B = dim('batch');
const linear = graph('linear', (g) => {
  const x = g.input('x', f32(B, 3));
  const y = g.input('y', f32(B, 1));
  const w = g.param('w', f32(3, 1), g.init.zeros());
  return { loss: g.mse(g.matmul(x, w), y) };
});

const step = await compileAsync(grad(linear, 'loss'), { backend: 'auto', optimizer: sgd(0.1) });
console.log(step.backendInfo);   // which backend and adapter it took, or why it fell back
const x = tensor([1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1], [4, 3]);
const y = tensor([1, 2, 3, 6], [4, 1]);                // y = x · [1, 2, 3]
for (let i = 0; i < 200; i++) await step.run({ x, y });
const { loss } = await step.run({ x, y });
const { 'param:w': w } = await step.readVariables();
console.log(`loss ${loss.data[0].toExponential(2)}, w = [${Array.from(w.data, (v) => v.toFixed(3))}]`);
