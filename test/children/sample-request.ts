// One sample() request in a child process (the bad-input suites): prints
// { ok, shape, finite } or { code, name, message }.
//   sample-request.ts MODEL '{"count": 1e9, "guidance": [["cfg", {"scale": 3}]], ...}'
import { type SampleOptions, type Strategy, cfg, loadModel, pag, sample, seg, tsg } from '../../src/index.js';

const factories: Record<string, (options: never) => Strategy> = { cfg, pag, seg, tsg };
const [path, json] = process.argv.slice(2);
const { guidance = [], ...rest } = JSON.parse(json!) as { guidance?: [string, object][] } & Record<string, unknown>;
try {
  using model = await loadModel(path!, { device: 'cpu' });
  const options = { model, sampler: { name: 'euler', steps: 3 }, ...rest, guidance: guidance.map(([name, o]) => factories[name]!(o as never)) };
  const { images } = await sample(options as SampleOptions);
  const data = (await images.toArray()) as Float32Array;
  console.log(JSON.stringify({ ok: true, shape: images.shape, finite: data.every(Number.isFinite) }));
  images.dispose();
} catch (error) {
  const e = error as { code?: string; name?: string; message?: string };
  console.log(JSON.stringify({ code: e.code ?? null, name: e.name ?? null, message: e.message ?? String(error) }));
}
