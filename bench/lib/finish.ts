// The end of every benchmark script: save the raw result, regenerate the docs.
import { machine, save } from "./env.js";
import { writeReport } from "./report.js";

export async function finish<T>(name: string, settings: object, result: T): Promise<void> {
  const file = save({ name, finishedAt: new Date().toISOString(), command: `npx tsx bench/${name}.ts`, machine: await machine(), settings: { ...settings }, result });
  process.stdout.write(`${name}: raw results in ${file}; ${await writeReport()} regenerated\n`);
}
