/**
 * The layers of src/ (docs/architecture.md, "The TypeScript layers"): every
 * file sits in a layer folder, imports only go down the layers (the tools
 * image/, io/ and metrics/ beside them, where the table puts them), the
 * package's root entry imports only the sampling API, and files and functions
 * stay short. Read from the sources with TypeScript's own parser, so it needs
 * no build; the checker is also run on made-up sources, so that a rule it
 * could never break would show.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, posix, relative } from 'node:path';

import ts from 'typescript';

const root = join(import.meta.dirname, '..', 'src');

/**
 * Which layers each layer's files may import (besides their own), each list
 * complete rather than implied. The sampling stack is core ← hooks ← model ←
 * guidance ← sampling ← runs ← queue, cli. image/ and io/ are tools on core
 * that the stack does not need (sampling returns tensors; saving them is the
 * caller's business); metrics/ scores samples with a classifier, a Model, so
 * it sits on model. `index.ts` is the package's root entry: the sampling API
 * alone, the tools being subpath entries of their own (package.json exports).
 */
const MAY_IMPORT: Record<string, readonly string[]> = {
  core: [],
  hooks: ['core'],
  model: ['hooks', 'core'],
  guidance: ['model', 'hooks', 'core'],
  sampling: ['guidance', 'model', 'hooks', 'core'],
  image: ['core'],
  io: ['image', 'core'],
  metrics: ['model', 'hooks', 'core', 'io', 'image'],
  runs: ['sampling', 'guidance', 'model', 'hooks', 'core', 'io', 'image'],
  queue: ['runs', 'sampling', 'guidance', 'model', 'hooks', 'core', 'io', 'image'],
  cli: ['queue', 'runs', 'metrics', 'sampling', 'guidance', 'model', 'hooks', 'core', 'io', 'image'],
  'index.ts': ['sampling', 'guidance', 'model', 'hooks', 'core'],
};
/**
 * The one file outside src/ that src/ may import, and who: the binary finder
 * that the install script shares with the loader, shipped in the package.
 */
const OUTSIDE_SRC: Record<string, string> = { 'scripts/binary-candidates.mjs': 'core' };
const MAX_FILE_LINES = 400;
const MAX_FUNCTION_LINES = 80;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sources(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [join(dir, entry.name)] : [],
  );
}

/** The layer of a file named relative to src/: its first folder, or the file itself at the top. */
function layerOf(name: string): string {
  return name.split('/')[0]!;
}

/**
 * Problems with one file's relative imports (static, type-only, re-exports and
 * import()), given its name relative to src/. Package imports (zod, node:*)
 * are not layers and pass.
 */
function importProblems(name: string, text: string): string[] {
  const layer = layerOf(name);
  const allowed = new Set([layer, ...(MAY_IMPORT[layer] ?? [])]);
  const problems: string[] = [];
  for (const { fileName } of ts.preProcessFile(text, true, true).importedFiles) {
    if (!fileName.startsWith('.')) continue;
    const target = posix.normalize(posix.join(posix.dirname(name), fileName));
    if (target.startsWith('../')) {
      const outside = posix.normalize(posix.join('src', target));
      if (OUTSIDE_SRC[outside] !== layer) problems.push(`imports '${fileName}', outside src/`);
      continue;
    }
    const to = layerOf(target);
    if (!allowed.has(to)) problems.push(`imports '${fileName}': ${layer} may import ${[...allowed].join(', ')}`);
  }
  return problems;
}

/** Lines as an editor numbers them (a final newline ends the last line, it does not start another). */
function lineCount(text: string): number {
  return text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
}

/** The comment lines right above line `line` (0-based), joined. */
function commentAbove(lines: readonly string[], line: number): string {
  let comment = '';
  for (let c = line - 1; c >= 0 && /^\s*(\/\/|\/\*|\*)/.test(lines[c]!); c--) comment = `${lines[c]!.trim()} ${comment}`;
  return comment;
}

/**
 * Functions of any form (declarations, methods, constructors, accessors,
 * arrow functions and function expressions) that run over the limit, from
 * the first line of their declaration to their closing brace. One may be
 * longer when the comment right above it says why ("long because ...").
 * A function inside another counts for itself and within the outer one.
 */
function longFunctions(text: string, limit = MAX_FUNCTION_LINES): string[] {
  const file = ts.createSourceFile('source.ts', text, ts.ScriptTarget.ES2022, true);
  const lines = text.split('\n');
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body) {
      const first = file.getLineAndCharacterOfPosition(node.getStart(file)).line;
      const last = file.getLineAndCharacterOfPosition(node.getEnd()).line;
      const length = last - first + 1;
      if (length > limit && !/long because/i.test(commentAbove(lines, first))) {
        found.push(`${lines[first]!.trim().slice(0, 70)}... (line ${first + 1}): ${length} lines`);
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
  return found;
}

describe('src layers', () => {
  const files = sources(root).map((path) => ({ name: relative(root, path).split('\\').join('/'), text: readFileSync(path, 'utf8') }));

  it('every file sits in a layer folder', () => {
    assert.ok(files.length > 100, `only ${files.length} TypeScript files found under ${root}`);
    const loose = files.filter(({ name }) => !(layerOf(name) in MAY_IMPORT));
    assert.deepEqual(loose.map((f) => f.name), []);
  });

  it('imports go down the layers only, and the root entry holds the sampling API alone', () => {
    const problems = files.flatMap(({ name, text }) => importProblems(name, text).map((p) => `${name}: ${p}`));
    assert.deepEqual(problems, []);
  });

  it(`no file over ${MAX_FILE_LINES} lines, no function over ${MAX_FUNCTION_LINES} without a reason`, () => {
    // One list, so that a failure shows every long file and function at once.
    const long = files.filter(({ text }) => lineCount(text) > MAX_FILE_LINES).map(({ name, text }) => `${name}: ${lineCount(text)} lines`);
    const functions = files.flatMap(({ name, text }) => longFunctions(text).map((f) => `${name}: ${f}`));
    assert.deepEqual([...long, ...functions], []);
  });

  it('the layer table is a stack: no two layers may import each other, and every layer named exists', () => {
    const folders = new Set(readdirSync(root));
    for (const [layer, below] of Object.entries(MAY_IMPORT)) {
      assert.ok(folders.has(layer), `${layer} is in the table but not in src/`);
      for (const other of below) {
        assert.ok(other in MAY_IMPORT, `${layer} may import ${other}, which is not a layer`);
        assert.ok(!MAY_IMPORT[other]!.includes(layer), `${layer} and ${other} may import each other`);
      }
    }
  });

  it('the checks catch what they are for', () => {
    // Down, within, and packages: fine.
    const fine = "import { z } from 'zod';\nimport type { Tensor } from '../core/tensor.js';\nimport { a } from './a.js';\nimport { b } from '../hooks/b.js';\n";
    assert.deepEqual(importProblems('model/m.ts', fine), []);
    assert.deepEqual(importProblems('guidance/strategies/s.ts', "import { c } from '../../core/c.js';\nimport { d } from '../denoiser.js';\n"), []);
    // Up, sideways, in every syntax: caught; in a comment: not an import.
    assert.equal(importProblems('model/m.ts', "import { sample } from '../sampling/sample.js';\n").length, 1);
    assert.equal(importProblems('model/m.ts', "import type { Strategy } from '../guidance/types.js';\n").length, 1);
    assert.equal(importProblems('core/c.ts', "export { Canvas } from '../image/canvas.js';\n").length, 1);
    assert.equal(importProblems('core/c.ts', "export * from '../hooks/attention.js';\n").length, 1);
    assert.equal(importProblems('image/p.ts', "const m = await import('../model/model.js');\n").length, 1);
    assert.equal(importProblems('guidance/strategies/s.ts', "import { x } from '../../sampling/sample.js';\n").length, 1);
    assert.equal(importProblems('queue/q.ts', "import { main } from '../cli/main.js';\n").length, 1);
    assert.equal(importProblems('io/f.ts', "import { c } from '../metrics/classifier.js';\n").length, 1);
    assert.deepEqual(importProblems('model/m.ts', "// import { sample } from '../sampling/sample.js';\n"), []);
    // The root entry: the sampling API, not the tools.
    assert.deepEqual(importProblems('index.ts', "export { sample } from './sampling/sample.js';\nexport * from './guidance/index.js';\n"), []);
    assert.equal(importProblems('index.ts', "export * from './image/index.js';\n").length, 1);
    assert.equal(importProblems('index.ts', "export { featureMetrics } from './metrics/feature-metrics.js';\n").length, 1);
    // Leaving src/: only the binary finder, only from core/.
    assert.deepEqual(importProblems('core/native/binding.ts', "import { loadBinary } from '../../../scripts/binary-candidates.mjs';\n"), []);
    assert.equal(importProblems('model/m.ts', "import { loadBinary } from '../../scripts/binary-candidates.mjs';\n").length, 1);
    assert.equal(importProblems('core/c.ts', "import data from '../../test/helpers/python.js';\n").length, 1);

    assert.equal(lineCount('a\nb\n'), 2);
    assert.equal(lineCount('a\nb'), 2);
    const body = (n: number) => Array.from({ length: n }, (_, i) => `  x += ${i};`).join('\n');
    const declared = (comment: string, n: number) => `${comment}export function long(x: number,\n  y: number): number {\n${body(n)}\n  return x;\n}\n\nfunction short() { return 1; }\n`;
    assert.equal(longFunctions(declared('/** Adds. */\n', 90)).length, 1);
    assert.deepEqual(longFunctions(declared('/** Adds. */\n', 70)), []);
    assert.deepEqual(longFunctions(declared('/**\n * Adds; long because it is one table.\n */\n', 90)), []);
    assert.deepEqual(longFunctions(declared('// Adds; long because it is one table.\n', 90)), []);
    // Methods, arrows in a property, and an arrow inside a short-enough outer function.
    assert.equal(longFunctions(`class C {\n  async run(): Promise<void> {\n${body(85)}\n  }\n}\n`).length, 1);
    assert.equal(longFunctions(`const o = {\n  step: async (x: number) => {\n${body(85)}\n  },\n};\n`).length, 1);
    assert.equal(longFunctions(`function outer() {\n  const inner = () => {\n${body(85)}\n  };\n  return inner;\n}\n`).length, 2);
    // A long object or table that is not a function is not caught.
    assert.deepEqual(longFunctions(`const table = {\n${Array.from({ length: 100 }, (_, i) => `  k${i}: ${i},`).join('\n')}\n};\n`), []);
  });
});
