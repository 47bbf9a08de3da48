// Runs one scenario in a fresh process, for measurements that need it: `global.gc` (started with
// --expose-gc) and an RSS that belongs to the scenario alone.
//   node --expose-gc --import tsx test/stress/child.ts <scenario> '<json options>'
// Prints one line `RESULT <json>` and then lets the program end by itself (the parent checks that it does).
import { bigMessages } from '../reliability/scenarios-input.ts';
import { churn, soak } from '../reliability/scenarios-resources.ts';

const scenarios: Record<string, (options: any) => Promise<unknown>> = { bigMessages, churn, soak };

const [name, json] = process.argv.slice(2);
const scenario = scenarios[name ?? ''];
if (scenario === undefined) {
  process.stderr.write(`unknown scenario ${name}; one of ${Object.keys(scenarios).join(', ')}\n`);
  process.exitCode = 2;
} else {
  const result = await scenario(JSON.parse(json ?? '{}'));
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}
