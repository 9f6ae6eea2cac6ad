// rum.min.js (what the daemon serves) must be the build of rum.js with the pinned terser:
// editing rum.js without running scripts/build-loader.sh fails here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { build, source, output } from '../build.mjs';

test('rum.min.js is the build of rum.js', async () => {
  const built = await build(await readFile(source, 'utf8'));
  const committed = await readFile(output, 'utf8');
  assert.ok(committed === built, 'loader/rum.min.js is stale: run scripts/build-loader.sh');
});

test('the test hook is not in the build', async () => {
  const committed = await readFile(output, 'utf8');
  assert.doesNotMatch(committed, /RB_TEST/);
});
