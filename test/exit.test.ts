import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

import { repoRoot } from './helpers/python.js';

function runChild(mode: string) {
  return spawnSync(process.execPath, ['--import', 'tsx', join(repoRoot, 'test', 'children', 'exit-with-forward-in-flight.ts'), mode], {
    cwd: repoRoot,
    encoding: 'utf8',
    timeout: 120_000,
  });
}

describe('process exit', () => {
  for (const mode of ['exit', 'abort', 'natural']) {
    it(`exits cleanly (${mode}) with forwards in flight and nothing disposed`, () => {
      const result = runChild(mode);
      const output = `${result.stdout}\n${result.stderr}`;
      assert.equal(result.signal, null, `killed by ${result.signal}:\n${output}`);
      assert.equal(result.status, 0, output);
      assert.match(result.stdout, /started/);
      assert.doesNotMatch(output, /terminate called|Segmentation|Aborted|core dumped/);
      if (mode === 'natural') assert.match(result.stdout, /finished 5/);
    });
  }
});
