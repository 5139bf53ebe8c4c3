/**
 * `torch-guidance inspect`: what a model file holds and how this process
 * runs it (the runtime, the model's methods, attention and module sites, and
 * its card).
 */
import { loadModel } from '../model/model.js';
import { runtimeInfo, type BlasInfo, type RuntimeInfo } from '../core/runtime.js';
import { deviceFlag, jsonFlag, parseFlags, trustFlag } from '../runs/flags.js';

/** The column where the help's option texts start. */
const COLUMN = 17;

/** The command's --help text. */
export const inspectHelp = `Usage: torch-guidance inspect <model.pt> [--device auto|cpu|cuda|cuda:N] [--json]

Prints the runtime (libtorch version, CUDA devices, threads, the BLAS libtorch
calls and its threads, loaded binary) and
the model: device, dtype, parameters, each method's signature, the attention
sites (path, kind, self/cross, tokens, query grid), every softmax or fused
attention op the attention pass left alone and why, and its card.

Options:
${deviceFlag.help(COLUMN, 'where to load the model: auto (default), cpu, cuda, cuda:N')}
${jsonFlag.help(COLUMN)}
${trustFlag.help(COLUMN)}

Example:
  torch-guidance inspect models/fixtures/tiny-unet.pt`;

const blasControl: Record<BlasInfo['control'], string> = {
  auto: 'auto: intra-op threads / torch job threads',
  fixed: 'fixed',
  external: 'set by OPENBLAS_NUM_THREADS',
  'intra-op': "follows torch's intra-op threads",
  none: 'not settable',
};

/** One or two lines: which BLAS, its threads and file, then the vendor's build string. */
function formatBlas(blas: BlasInfo): string[] {
  const threads = blas.threads === null ? 'threads unknown' : `${blas.threads} thread${blas.threads === 1 ? '' : 's'}`;
  const head =
    blas.name === 'reference'
      ? `reference, 1 thread: matrix multiplies ~20x slower than OpenBLAS (fix: apt-get install libopenblas0-pthread)`
      : `${blas.name}, ${threads} (${blasControl[blas.control]})${blas.threading ? `, ${blas.threading}` : ''}`;
  const lines = [`  BLAS         ${head}${blas.library ? ` ${blas.library}` : ''}`];
  if (blas.config) lines.push(`               ${blas.config}`);
  return lines;
}

function formatRuntime(info: RuntimeInfo): string {
  const cuda = info.cudaAvailable
    ? info.cudaDevices.map((d) => `${d.name} ${d.model ?? ''}`.trim()).join(', ')
    : `not available (${info.builtWithCuda ? 'no GPU found' : 'CPU-only libtorch'})`;
  return [
    'Runtime',
    `  libtorch     ${info.torchVersion} (${info.torchSource}) ${info.libtorchPath}`,
    `  CUDA         ${cuda}`,
    `  threads      intra-op ${info.intraOpThreads}, inter-op ${info.interOpThreads}, torch job threads ${info.jobThreads}`,
    ...formatBlas(info.blas),
    `  binary       ${info.binaryPath} (built ${info.build.builtAt})`,
  ].join('\n');
}

/** Runs `torch-guidance inspect` with `argv`. */
export async function inspectCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseFlags(argv, { ...deviceFlag.option, ...jsonFlag.option, ...trustFlag.option } as const, {
    count: 1,
    what: 'give exactly one model path.',
  });
  const info = runtimeInfo();
  using model = await loadModel(positionals[0]!, { device: deviceFlag.read(values.device), trust: trustFlag.read(values.trust) });
  const description = model.describe();
  const sites = model.attentionSites;
  const modules = model.moduleSites;
  const report = model.attentionReport;
  const unhooked = report.filter((c) => c.site === null);
  if (values.json) {
    const modelJson = { ...description, attentionSites: sites, attentionReport: report, moduleSites: modules };
    console.log(JSON.stringify({ runtime: info, model: modelJson }, null, 2));
    return;
  }
  const lines = [
    formatRuntime(info),
    '',
    'Model',
    `  path         ${description.path}`,
    `  device       ${description.device}, ${description.dtype}${description.frozen ? ', frozen' : ''}`,
    `  parameters   ${description.parameterCount.toLocaleString('en')} (${(description.parameterBytes / 1024).toFixed(1)} KiB)`,
    '  methods',
    ...description.methods.map((m) => `    ${m.signature}`),
    `  attention    ${sites.length === 0 ? 'no sites' : `${sites.length} site(s)`}`,
    ...sites.map(
      (s) =>
        `    ${String(s.id).padStart(2)}  ${s.path.padEnd(16)} ${s.kind.padEnd(8)} ` +
        `${s.selfAttention === null ? 'unprobed' : s.selfAttention ? 'self ' : 'cross'}  ` +
        `${s.tokens ? `${s.tokens.queries}x${s.tokens.keys} tokens` : ''}  ${s.grid ? `grid ${s.grid[0]}x${s.grid[1]}` : ''}`.trimEnd(),
    ),
    // What the pass saw and left alone: a selector reaching the `attention` ones fails (ERR_UNHOOKED_ATTENTION).
    `  not hooked   ${unhooked.length === 0 ? 'none (every softmax and fused attention op is a site)' : `${unhooked.length} op(s)`}`,
    ...unhooked.map((c) => `    ${c.op} in ${c.path || '(top level)'}${c.attention ? ' [attention]' : ''}: ${c.reason}`),
    // The blocks TSG can add noise to and skip-layer guidance can skip (src/hooks/module-hooks.ts).
    `  modules      ${modules.length === 0 ? 'no hookable module outputs' : `${modules.length} hookable output(s)`}`,
    ...modules.map(
      (m) =>
        `    ${String(m.id).padStart(2)}  ${m.path.padEnd(16)} ` +
        `${m.skippable === null ? 'unprobed ' : m.skippable ? 'skippable' : 'no skip  '}  ${m.outputShape ? `[${m.outputShape.join(', ')}]` : ''}`.trimEnd(),
    ),
    `  card         ${description.card === null ? '(none: the archive has no model.json)' : ''}`,
  ];
  if (description.card !== null) {
    lines.push(...JSON.stringify(description.card, null, 2).split('\n').map((l) => `    ${l}`));
  }
  console.log(lines.join('\n'));
}
