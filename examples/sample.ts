/**
 * Guided sampling: CFG and PAG stacked, ten Fashion-MNIST classes, one PNG grid.
 *
 *   npx tsx examples/sample.ts [out.png] [steps]
 */
import { fileURLToPath } from 'node:url';

import { cfg, loadModel, pag, sample } from 'torch-guidance';
import { imageGrid, toImages, writePng } from 'torch-guidance/image';

const out = process.argv[2] ?? 'samples.png';
const steps = Number(process.argv[3] ?? 20);
// The class-conditional Fashion-MNIST UNet that ships with the package.
const modelPath = fileURLToPath(import.meta.resolve('torch-guidance/models/fashion-unet.pt'));

using model = await loadModel(modelPath);            // cuda:0 when usable, else the CPU
const result = await sample({
  model,
  guidance: [cfg({ scale: 3 }), pag({ scale: 3 })], // stacked: one forward of 3N per step
  sampler: { name: 'euler', steps },                 // Karras sigmas by default
  labels: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],            // one per sample; null = unconditional
  seed: 42,                                          // sample i uses seed 42 + i, in any batch
  clipDenoised: [-1, 1],                             // the model's data range
  signal: AbortSignal.timeout(120_000),
  onProgress: ({ step }) => console.log(`step ${step}/${steps}`),
});
console.log(`forwards: ${result.forwards}, ms: ${result.timings.totalMs.toFixed(0)}`);
await writePng(out, imageGrid(await toImages(result.images), { columns: 10, scale: 2 }));
result.images.dispose();                             // the images stay on the model's device until asked for
console.log(`wrote ${out}`);
