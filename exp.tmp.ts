import { cfg, loadModel, pag, sample } from './src/index.js';
const model = await loadModel('models/fashion-unet.pt', { device: 'cpu' });
const labels = Array.from({ length: 16 }, (_, i) => i % 10);
const variants: [string, any[], number | 'auto'][] = [
  ['cfg auto', [cfg({ scale: 4 })], 'auto'],
  ['cfg+pag auto', [cfg({ scale: 4 }), pag({ scale: 3 })], 'auto'],
  ['cfg+pag 6', [cfg({ scale: 4 }), pag({ scale: 3 })], 6],
  ['cfg+pag 2', [cfg({ scale: 4 }), pag({ scale: 3 })], 2],
  ['pag auto', [pag({ scale: 3 })], 'auto'],
  ['cfg+pag 4', [cfg({ scale: 4 }), pag({ scale: 3 })], 4],
];
const times: Record<string, number[]> = {};
for (let r = 0; r < 5; r++) {
  for (const [name, guidance, parallel] of variants) {
    const t = performance.now();
    const result = await sample({ model, guidance, sampler: { name: 'euler', steps: 10, schedule: { kind: 'karras', rho: 7 } }, labels, seed: 0, batchSize: 16, parallel });
    await result.images.toArray(); result.images.dispose();
    (times[name] ??= []).push(performance.now() - t);
  }
}
for (const [k, v] of Object.entries(times)) { v.sort((a, b) => a - b); console.log(k.padEnd(14), v[2]!.toFixed(0), 'ms', v.map((x) => x.toFixed(0)).join(' ')); }
console.log(JSON.stringify((await import('./src/index.js')).runtimeInfo().blas));
