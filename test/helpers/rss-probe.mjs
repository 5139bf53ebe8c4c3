// Preloaded into child processes (--import) by test/helpers/child.ts: on exit,
// writes the process's peak resident memory (KiB) to TG_TEST_RSS_FILE, so a
// test can check that a refused request stayed small.
import { writeFileSync } from 'node:fs';
import { isMainThread } from 'node:worker_threads';

const file = process.env.TG_TEST_RSS_FILE;
if (file && isMainThread) {
  process.on('exit', () => {
    try {
      writeFileSync(file, String(process.resourceUsage().maxRSS));
    } catch {
      // the test reports the missing number
    }
  });
}
