// Loads one model file in a child process (the bad-input suites) and prints
// the outcome as JSON: { ok, sites, probed } or { code, message }. Flags:
//   --trust        loadModel(path, { trust: 'full' })
import { loadModel } from '../../src/index.js';

const [path, ...flags] = process.argv.slice(2);
try {
  using model = await loadModel(path!, { device: 'cpu', trust: flags.includes('--trust') ? 'full' : 'scan' });
  console.log(
    JSON.stringify({ ok: true, sites: model.attentionSites.length, probed: model.attentionSites.filter((s) => s.grid !== null).length }),
  );
} catch (error) {
  const e = error as { code?: string; message?: string };
  console.log(JSON.stringify({ code: e.code ?? null, message: e.message ?? String(error) }));
}
