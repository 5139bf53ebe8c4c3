import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { runtimeInfo } from '../src/index.js';
import { repoRoot } from './helpers/python.js';

function cli(...args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', join(repoRoot, 'src', 'cli', 'main.ts'), ...args], {
    cwd: repoRoot,
    encoding: 'utf8',
  });
}

describe('CLI', () => {
  it('inspect prints the runtime and the model: signature, parameters, card', () => {
    const result = cli('inspect', 'models/fixtures/tiny-unet.pt', '--device', 'cpu');
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /libtorch\s+\d+\.\d+/);
    assert.match(result.stdout, /forward\(x: Tensor, t: Tensor, label: Tensor\) -> Tensor/);
    assert.match(result.stdout, /"prediction": "eps"/);
    assert.match(result.stdout, /intra-op \d+/);
    // The same BLAS this process found (the child has the same environment).
    const { blas } = runtimeInfo();
    assert.match(result.stdout, new RegExp(`BLAS\\s+${blas.name}, .*${(blas.library ?? '').replace(/[.+]/g, '\\$&')}`));
    assert.match(result.stdout, /1  mid\.attn\s+softmax\s+self\s+49x49 tokens\s+grid 7x7/);
  });

  it('inspect --json prints one parseable object', () => {
    const result = cli('inspect', 'models/fixtures/tiny-mlp.pt', '--json');
    assert.equal(result.status, 0, result.stderr);
    const parsed = JSON.parse(result.stdout);
    assert.deepEqual(parsed.model.methods.map((m: { name: string }) => m.name).sort(), ['features', 'forward']);
    assert.equal(parsed.model.card, null);
    assert.equal(typeof parsed.runtime.torchVersion, 'string');
    assert.deepEqual(parsed.runtime.blas, runtimeInfo().blas);
  });

  it('exits 1 with the error code for a missing model', () => {
    const result = cli('inspect', 'no/such/model.pt');
    assert.equal(result.status, 1);
    assert.match(result.stderr, /ERR_MODEL_NOT_FOUND/);
  });

  it('exits 2 for usage errors and prints help', () => {
    assert.equal(cli('frobnicate').status, 2);
    assert.equal(cli('inspect').status, 2);
    const unknownFlag = cli('inspect', 'models/fixtures/tiny-mlp.pt', '--colour');
    assert.equal(unknownFlag.status, 2);
    assert.match(unknownFlag.stderr, /--colour/);
  });

  it('--help works for the tool and each command', () => {
    const help = cli('--help');
    assert.equal(help.status, 0);
    assert.match(help.stdout, /inspect/);
    const inspectHelp = cli('inspect', '--help');
    assert.equal(inspectHelp.status, 0);
    assert.match(inspectHelp.stdout, /--device/);
  });

  it('--version prints the version in package.json', () => {
    const { version } = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-v']) {
      const result = cli(flag);
      assert.equal(result.status, 0, result.stderr);
      assert.equal(result.stdout.trim(), version);
    }
  });

  it('help <command> prints that command\'s help; an unknown one is a usage error', () => {
    for (const command of ['attention', 'compare', 'evaluate', 'inspect', 'sample']) {
      const viaHelp = cli('help', command);
      assert.equal(viaHelp.status, 0, viaHelp.stderr);
      assert.match(viaHelp.stdout, new RegExp(`torch-guidance ${command}`));
      assert.equal(viaHelp.stdout, cli(command, '--help').stdout);
    }
    const unknown = cli('help', 'frobnicate');
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /no command 'frobnicate'/);
  });
});
