import t from 'tap';
import { UsageError, boolFlag, durationFlag, enumFlag, intFlag, listFlag, parseFlags, stringFlag } from '../../src/config/flags.js';
import { formatDuration, parseDuration } from '../../src/config/duration.js';

const specs = {
  port: intFlag('port', 1, 'p', { env: 'PORT', min: 1 }),
  name: stringFlag('name', 'x', 'n', { env: ['FIRST', 'SECOND'] }),
  on: boolFlag('on', true, 'b'),
  wait: durationFlag('wait', 10_000, 'w'),
  mode: enumFlag('mode', ['a', 'b'] as const, 'a', 'm'),
  list: listFlag('list', ['d'], 'l'),
};

t.test('pflag syntax', async (t) => {
  t.same(parseFlags(specs, []), { port: 1, name: 'x', on: true, wait: 10_000, mode: 'a', list: ['d'] });
  t.same(parseFlags(specs, ['--port=8', '--name', 'y', '--on=false', '--wait=1m30s', '--mode=b', '--list=a,b', '--list', 'c']), {
    port: 8, name: 'y', on: false, wait: 90_000, mode: 'b', list: ['a', 'b', 'c'],
  });
  t.same(parseFlags(specs, ['--on']).on, true);
  t.same(parseFlags(specs, ['--list=']).list, [], 'an empty list can be set');
});

t.test('environment, first variable wins, flags win over it', async (t) => {
  t.equal(parseFlags(specs, [], { PORT: '9' }).port, 9);
  t.equal(parseFlags(specs, [], { SECOND: 's', FIRST: 'f' }).name, 'f');
  t.equal(parseFlags(specs, [], { SECOND: 's' }).name, 's');
  t.equal(parseFlags(specs, ['--port=3'], { PORT: '9' }).port, 3);
});

t.test('errors', async (t) => {
  const bad: string[][] = [['--nope'], ['--port'], ['--port=0'], ['--port=1.5'], ['--on=maybe'], ['--wait=10'], ['--wait=5 s'], ['--mode=c'], ['x']];
  for (const argv of bad) t.throws(() => parseFlags(specs, argv), UsageError, argv.join(' '));
});

t.test('Go durations', async (t) => {
  const cases: [string, number | undefined][] = [['0', 0], ['45s', 45_000], ['90m', 5_400_000], ['8760h', 31_536_000_000], ['1h30m15s', 5_415_000], ['1.5s', 1500], ['500ms', 500], ['', undefined], ['h', undefined], ['10', undefined], ['1d', undefined]];
  for (const [raw, ms] of cases) t.equal(parseDuration(raw), ms, raw);
  t.equal(formatDuration(25_000), '25s');
  t.equal(formatDuration(5_415_000), '1h30m15s');
  t.equal(formatDuration(500), '500ms');
  t.equal(formatDuration(0), '0s');
});
