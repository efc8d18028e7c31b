// tsc compiles TypeScript only; files the code loads at run time are copied beside it.
import { cpSync } from 'node:fs';

const outDir = process.argv[2] ?? 'dist';
for (const file of ['channel/metrics.proto', 'channel/mirror.proto', 'channel/batch.proto']) cpSync(`src/${file}`, `${outDir}/${file}`);
