/**
 * The docs stay short where they are meant to and inside the repository: the
 * README is a front page, and no link in the docs (or any reference in a
 * tracked file) points at a path outside the repository, which would be dead
 * in a clone and on the package's page.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

import { repoRoot } from './helpers/python.js';

const pages = ['README.md', 'models/README.md', ...readdirSync(join(repoRoot, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

/** The targets of a page's Markdown links and images, outside code blocks. */
function links(page: string): string[] {
  const text = readFileSync(join(repoRoot, page), 'utf8').replace(/```[\s\S]*?```/g, '');
  return [...text.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!);
}

describe('docs', () => {
  it('the README is a front page of under 8 KB', () => {
    const bytes = statSync(join(repoRoot, 'README.md')).size;
    assert.ok(bytes < 8 * 1024, `README.md is ${bytes} bytes`);
  });

  it('no link in the docs leaves the repository', () => {
    let checked = 0;
    for (const page of pages) {
      for (const target of links(page)) {
        if (/^(https?:|mailto:|#)/.test(target)) continue;
        const path = relative(repoRoot, resolve(repoRoot, dirname(page), target.split('#')[0]!));
        assert.ok(!path.startsWith('..'), `${page} links to ${target}, outside the repository`);
        checked++;
      }
    }
    assert.ok(checked > 20, `only ${checked} relative links found: is the pattern right?`);
  });

  it('no tracked file refers to design notes outside the repository', () => {
    const grep = spawnSync('git', ['grep', '-n', '-I', '-e', '\\.\\./shared/', '-e', 'shared/design/', '--', '.', ':!test/docs.test.ts'], {
      cwd: repoRoot,
      encoding: 'utf8',
    });
    // git grep exits 1 when nothing matches, 0 with matches, above 1 on errors.
    assert.equal(grep.status, 1, `${grep.stdout}${grep.stderr}`);
  });
});
