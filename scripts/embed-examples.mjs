#!/usr/bin/env node
// The docs show the examples verbatim: in README.md and docs/*.md, the ```ts
// block right after a line `<!-- example: examples/NAME.ts -->` is a copy of
// that file.
//
//   node scripts/embed-examples.mjs           rewrite the blocks from the files
//   node scripts/embed-examples.mjs --check   exit 1 if a block differs, or an example is shown nowhere
//
// Either way it prints each example and the pages that show it.
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const check = process.argv.includes('--check');
const pages = ['README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
const examples = readdirSync(join(root, 'examples')).filter((f) => f.endsWith('.ts')).map((f) => `examples/${f}`);
const marker = /^<!-- example: (\S+) -->\n```ts\n([\s\S]*?)```\n/gm;

const shownIn = new Map(examples.map((e) => [e, []]));
const problems = [];
for (const page of pages) {
  const text = readFileSync(join(root, page), 'utf8');
  const updated = text.replace(marker, (block, file, body) => {
    if (!shownIn.has(file)) {
      problems.push(`${page}: no example ${file}`);
      return block;
    }
    shownIn.get(file).push(page);
    const source = readFileSync(join(root, file), 'utf8');
    if (body !== source) problems.push(`${page}: its copy of ${file} differs from the file`);
    return `<!-- example: ${file} -->\n\`\`\`ts\n${source}\`\`\`\n`;
  });
  if (!check && updated !== text) writeFileSync(join(root, page), updated);
}
for (const [file, where] of shownIn) {
  console.log(`${file}: ${where.join(', ') || '(nowhere)'}`);
  if (where.length === 0) problems.push(`${file} is shown in no page`);
}
if (check && problems.length > 0) {
  console.error(problems.join('\n'));
  console.error("Run 'npm run docs:examples' to copy the examples into the docs.");
  process.exit(1);
}
