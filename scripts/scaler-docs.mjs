// Rewrites the README's scaler parameter tables from the scalers' declarations (run after a
// build: `npm run docs`). test/operator/scalers/parameters.test.ts fails while they differ.
import { readFile, writeFile } from 'node:fs/promises';
import { scalerParameters } from '../dist/operator/scalers/index.js';
import { withParameterTables } from '../dist/operator/scalers/parameters.js';

// Run from the repository's root, as npm scripts are.
const file = 'README.md';
const before = await readFile(file, 'utf8');
const after = withParameterTables(before, scalerParameters);
if (after === before) console.log('README.md: parameter tables already up to date');
else {
  await writeFile(file, after);
  console.log('README.md: parameter tables rewritten');
}
