// scalingModifiers formulas: KEDA's documented examples evaluate as expr evaluates them, and every
// kind of mistake is refused when compiled, saying where (line:column), before any value is read.
import t from 'tap';
import { compileFormula, FormulaError } from '../../../src/operator/scaledobjects/formula.js';

const NAMES = ['trig_one', 'trig_two', 'trig_three'];
const run = (formula: string, values: Record<string, number> = { trig_one: 4, trig_two: 6, trig_three: 1 }) => compileFormula(formula, NAMES).evaluate(values);

t.test('KEDA\'s documented examples', async (t) => {
  t.equal(run('(trig_one + trig_two) / 2'), 5);
  t.equal(run('trig_one > 2 ? trig_one + trig_two : 1'), 10);
  t.equal(run('trig_one > 2 ? trig_one + trig_two : 1', { trig_one: 1, trig_two: 6, trig_three: 0 }), 1);
  t.equal(run('trig_one < 2 ? trig_one + trig_two >= 2 ? 5 : 10 : 0', { trig_one: 1, trig_two: 6, trig_three: 0 }), 5, 'nested conditionals');
  t.equal(run('max(trig_one, trig_two, trig_three)'), 6);
  t.equal(run('min([trig_one, trig_two])'), 4);
});

t.test('operators, precedence and built-ins', async (t) => {
  const cases: [string, number][] = [
    ['1 + 2 * 3', 7],
    ['(1 + 2) * 3', 9],
    ['2 ** 3 ** 2', 512],
    ['2 ^ 10', 1024],
    ['-2 ** 2', -4],
    ['7 % 4', 3],
    ['7 / 2', 3.5],
    ['1_000 + 1e3', 2000],
    ['trig_one == 4 && !(trig_two < 5) ? 1 : 0', 1],
    ['trig_one == 3 or not false ? 1 : 0', 1],
    ['nil ?? trig_three', 1],
    ['abs(-3) + ceil(1.2) + floor(1.8) + round(2.5) + round(-2.5) + int(-1.7) + float(2)', 3 + 2 + 1 + 3 - 3 - 1 + 2],
    ['sum([1, 2, 3]) + mean([2, 4]) + median([5, 1, 3]) + median([1, 2, 3, 4])', 6 + 3 + 3 + 2.5],
  ];
  for (const [f, v] of cases) t.equal(run(f), v, f);
  t.strictSame([...compileFormula('trig_one + 1', NAMES).names], ['trig_one'], 'the names read');
});

t.test('refused when compiled, with the position of the mistake', async (t) => {
  const cases: [string, RegExp][] = [
    ['trig_four + 1', /^unknown name trig_four \(the named triggers: trig_one, trig_two, trig_three\) \(1:1\)$/],
    ['trig_one +', /^unexpected the end of the formula \(1:11\)$/],
    ['trig_one + + * 2', /^unexpected "\*" \(1:14\)$/],
    ['(trig_one + 1', /^expected "\)", found the end of the formula \(1:14\)$/],
    ['trig_one 2', /^unexpected "2" \(1:10\)$/],
    ['trig_one > 1', /^the formula must give a number, not a boolean \(1:1\)$/],
    ['trig_one ? 1 : 2', /^the condition of \?: must be a boolean, not a number \(1:1\)$/],
    ['trig_one > 1 ? true : 2', /^both branches of \?: must have one type \(bool and number\) \(1:14\)$/],
    ['trig_one && true ? 1 : 0', /^the left side of && must be a boolean, not a number \(1:1\)$/],
    ['sqrt(trig_one)', /^unknown function sqrt\(\) \(available: .*\) \(1:1\)$/],
    ['abs(1, 2)', /^abs\(\) takes one number \(1:1\)$/],
    ['count([trig_one], {# > 1})', /^predicates \(\{\.\.\.\}\) are not supported in formulas \(1:19\)$/],
    ['trig_one\n  + @', /^unexpected character "@" \(2:5\)$/],
    ['', /^the formula is empty$/],
  ];
  for (const [f, message] of cases) t.throws(() => compileFormula(f, NAMES), { name: 'FormulaError', message }, JSON.stringify(f));
});

t.test('a result that is not a finite number is an error, naming the values', async (t) => {
  const f = compileFormula('trig_one / trig_two', NAMES);
  t.throws(() => f.evaluate({ trig_one: 1, trig_two: 0 }), new FormulaError('the formula gave Infinity for trig_one=1, trig_two=0'));
  t.throws(() => compileFormula('max([])', NAMES).evaluate({}), /an empty list has no value/);
  t.throws(() => compileFormula('trig_one', NAMES).evaluate({}), /the formula gave NaN/, 'a value missing');
});
