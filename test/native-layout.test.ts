/**
 * The layers of native/src (docs/architecture.md, "The native layers"): every
 * file sits in one layer folder, includes only go down the layers, Node-API
 * stays in runtime/ and napi/, and files and functions stay short. Read from
 * the sources, so it needs no build; the checker is also run on made-up
 * sources, so that a rule it could never break would show.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = join(import.meta.dirname, '..', 'native', 'src');

/** Which layers each layer's files may include (besides their own). */
const MAY_INCLUDE: Record<string, readonly string[]> = {
  common: [],
  io: ['common'],
  ops: ['common'],
  jit: ['ops', 'io', 'common'],
  runtime: ['common'],
  napi: ['jit', 'ops', 'io', 'runtime', 'common'],
};
/** The layers that may use Node-API (napi.h, node_api.h). */
const NODE_API = new Set(['runtime', 'napi']);
const MAX_FILE_LINES = 400;
const MAX_FUNCTION_LINES = 80;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sources(join(dir, entry.name)) : [join(dir, entry.name)],
  );
}

/** Problems with one file's includes, given its layer. */
function includeProblems(layer: string, text: string): string[] {
  const allowed = new Set([layer, ...(MAY_INCLUDE[layer] ?? [])]);
  const problems: string[] = [];
  for (const [, path] of text.matchAll(/^#include "([^"]+)"/gm)) {
    const target = path!.split('/')[0]!;
    if (!path!.includes('/')) problems.push(`includes "${path}" without its layer folder`);
    else if (!allowed.has(target)) problems.push(`includes "${path}": ${layer}/ may include ${[...allowed].join(', ')}`);
  }
  if (!NODE_API.has(layer) && /^#include <(napi|node_api)\.h>/m.test(text)) problems.push(`uses Node-API, which only ${[...NODE_API].join(' and ')} may`);
  return problems;
}

const NOT_A_FUNCTION = /^(namespace|struct|class|enum|union|#|using|template|}|\/\/|static_assert|extern|typedef|TORCH_LIBRARY)/;

/**
 * Functions (and methods) defined at file level that run over the limit: a
 * definition starts at column 0 with a parenthesis and ends with the brace
 * that closes it at column 0. One may be longer when the comment right above
 * it says why ("long because ...").
 */
function longFunctions(text: string, limit = MAX_FUNCTION_LINES): string[] {
  const lines = text.split('\n');
  const found: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (!line || /^\s/.test(line) || NOT_A_FUNCTION.test(line) || !line.includes('(') || line.trimEnd().endsWith(';')) continue;
    let open = i;
    while (open < lines.length && !/[{;]\s*$/.test(lines[open]!)) open++;
    if (open >= lines.length || lines[open]!.trimEnd().endsWith(';')) continue;
    let depth = 0;
    let end = i;
    for (; end < lines.length; end++) {
      depth += (lines[end]!.match(/{/g) ?? []).length - (lines[end]!.match(/}/g) ?? []).length;
      if (depth === 0 && end >= open) break;
    }
    const length = end - i + 1;
    let comment = '';
    for (let c = i - 1; c >= 0 && lines[c]!.startsWith('//'); c--) comment = `${lines[c]} ${comment}`;
    if (length > limit && !/long because/i.test(comment)) found.push(`${line.trim().slice(0, 70)}... (line ${i + 1}): ${length} lines`);
    i = end;
  }
  return found;
}

describe('native/src layers', () => {
  const files = sources(root).map((path) => ({ path, name: relative(root, path), text: readFileSync(path, 'utf8') }));

  it('every file sits in a layer folder', () => {
    assert.ok(files.length > 40, `only ${files.length} native files found under ${root}`);
    const loose = files.filter(({ name }) => !(name.split('/')[0]! in MAY_INCLUDE) || !name.includes('/'));
    assert.deepEqual(loose.map((f) => f.name), []);
  });

  it('includes go down the layers only, and Node-API stays in runtime/ and napi/', () => {
    const problems = files.flatMap(({ name, text }) => includeProblems(name.split('/')[0]!, text).map((p) => `${name}: ${p}`));
    assert.deepEqual(problems, []);
  });

  it(`no file over ${MAX_FILE_LINES} lines, no function over ${MAX_FUNCTION_LINES} without a reason`, () => {
    const long = files.filter(({ text }) => text.split('\n').length > MAX_FILE_LINES).map(({ name, text }) => `${name}: ${text.split('\n').length} lines`);
    assert.deepEqual(long, []);
    const functions = files.flatMap(({ name, text }) => longFunctions(text).map((f) => `${name}: ${f}`));
    assert.deepEqual(functions, []);
  });

  it('the checks catch what they are for', () => {
    assert.deepEqual(includeProblems('ops', '#include "ops/a.h"\n#include "common/errors.h"\n'), []);
    assert.equal(includeProblems('ops', '#include "napi/tensor.h"\n').length, 1);
    assert.equal(includeProblems('jit', '#include "runtime/executor.h"\n').length, 1);
    assert.equal(includeProblems('io', '#include "errors.h"\n').length, 1);
    assert.equal(includeProblems('common', '#include <napi.h>\n').length, 1);
    assert.deepEqual(includeProblems('napi', '#include <napi.h>\n#include "jit/model_load.h"\n'), []);
    const body = (n: number) => Array.from({ length: n }, (_, i) => `  x += ${i};`).join('\n');
    const source = (comment: string, n: number) => `${comment}int Long(int x,\n         int y) {\n${body(n)}\n  return x;\n}\n\nint Short() { return 1; }\n`;
    assert.equal(longFunctions(source('// Adds.\n', 90)).length, 1);
    assert.deepEqual(longFunctions(source('// Adds.\n', 70)), []);
    assert.deepEqual(longFunctions(source('// Adds; long because it is one table.\n', 90)), []);
    assert.deepEqual(longFunctions('struct S {\n' + body(100) + '\n};\n'), []);
  });
});
