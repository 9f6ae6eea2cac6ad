// Builds rum.min.js from rum.js with the pinned terser (package-lock.json).
//
// `node build.mjs` writes rum.min.js; `node build.mjs --check` fails if the committed
// rum.min.js differs from what the build gives (the test suite runs the same check).
// The `RB_TEST` hook of rum.js is defined as `false` here, so it vanishes from the build.
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { minify } from 'terser';

const here = (name) => fileURLToPath(new URL(name, import.meta.url));

export const source = here('rum.js');
export const output = here('rum.min.js');

/** The minified loader for `code` (the text of rum.js). */
export async function build(code) {
  const { version } = JSON.parse(await readFile(here('package.json'), 'utf8'));
  const result = await minify(code, {
    ecma: 2020,
    compress: { global_defs: { RB_TEST: false }, passes: 3, unsafe_arrows: true },
    mangle: true,
    format: { comments: false, preamble: `/*! rum-bridge loader ${version} */` },
  });
  return `${result.code}\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const built = await build(await readFile(source, 'utf8'));
  if (process.argv.includes('--check')) {
    const committed = await readFile(output, 'utf8').catch(() => '');
    if (committed !== built) {
      console.error('loader/rum.min.js is stale: run scripts/build-loader.sh');
      process.exit(1);
    }
  } else {
    await writeFile(output, built);
    console.log(`wrote ${output} (${built.length} bytes)`);
  }
}
