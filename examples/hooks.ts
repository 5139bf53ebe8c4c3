/**
 * The low-level API: a forward with attention hooks on chosen batch slices.
 * PAG's identity on samples 2-3, SEG's query blur on samples 4-5, a captured
 * attention map of sample 0; every other sample is computed as without hooks.
 *
 *   npx tsx examples/hooks.ts
 */
import { fileURLToPath } from 'node:url';

import { loadModel, randn, tensor, type Tensor } from 'torch-guidance';

using model = await loadModel(fileURLToPath(import.meta.resolve('torch-guidance/models/fashion-unet.pt')));
console.log(model.methods[0]!.signature);                // forward(x: Tensor, t: Tensor, label: Tensor) -> Tensor
for (const site of model.attentionSites) {
  console.log(`site ${site.path}: ${site.kind}, ${site.selfAttention ? 'self' : 'cross'}, grid ${site.grid?.join('x')}`);
}

const batch = 6;
using x = randn([batch, 1, 28, 28], { seed: [1, 2, 3, 4, 5, 6], device: model.device }); // one seed per sample
using t = tensor(new Float32Array(batch).fill(500), [batch], { device: model.device });
using label = tensor(new BigInt64Array([0n, 1n, 2n, 3n, 4n, 5n]), [batch], { device: model.device });

using plain = await model.forward<Tensor>(x, t, label); // on a torch thread; the result stays on the device
const { output, captures } = await model.run<Tensor>({
  inputs: [x, t, label],
  hooks: [
    { sites: 'mid.*', action: 'identity', start: 2, length: 2 },         // PAG: probabilities = I
    { sites: 'down.**', action: 'blur', sigma: 10, start: 4, length: 2 }, // SEG: queries blurred over the grid
    { sites: /^up\./, action: 'capture', start: 0, length: 1 },          // head-averaged maps
  ],
});
using hooked = output;
for (const [path, map] of captures) {
  console.log(`captured ${path}: [${map.shape.join(', ')}]`);
  map.dispose();
}

// How far each sample moved: 0 for the samples no hook touched.
using difference = hooked.sub(plain);
using norms = difference.normPerSample();
const moved = Array.from((await norms.toArray()) as Float32Array);
moved.forEach((value, i) => console.log(`sample ${i}: |hooked - plain| = ${value.toPrecision(3)}`));
