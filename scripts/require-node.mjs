// npm scripts must run on the Node major the project pins (the `node` package in devDependencies
// puts it on PATH as node_modules/.bin/node). Fail loudly instead of testing on the wrong runtime.
const want = '24';
const have = process.versions.node.split('.')[0];
if (have !== want) {
  console.error(`error: this project runs on Node ${want}, but npm scripts got ${process.version} (${process.execPath}); run "npm ci" so that node_modules/.bin/node exists`);
  process.exit(1);
}
