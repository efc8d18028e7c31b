#!/usr/bin/env node
// The executable's entry. It checks the Node version before anything else is loaded: on an older
// Node the code would fail deep inside a dependency with an error that says nothing about why.
// Everything else is in commands.ts, imported only once the check has passed.
const REQUIRED_MAJOR = 24;

if (Number(process.versions.node.split('.')[0]) < REQUIRED_MAJOR) {
  process.stderr.write(
    `error: keda-ts needs Node ${REQUIRED_MAJOR} or later, and this is Node v${process.versions.node} (${process.execPath}). ` +
      `In a checkout, \`npm ci\` installs the pinned Node: run node_modules/.bin/node dist/cli.js ${process.argv.slice(2).join(' ')}`.trimEnd() +
      ' (npm scripts use it already); the container image has it.\n',
  );
  process.exit(1);
}

await import('./commands.js');
