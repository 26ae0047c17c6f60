// Rewrites the metrics reference table of docs/operations.md from the /metrics of fresh nodes of
// the release binary (FERROCAST_BIN, default target/release/ferrocast): without arguments, and
// with a full config on the memory and the Redis backplane. `make metrics-reference` runs it;
// metrics-reference.test.mjs fails while the table differs from what it would write.

import { mergeRuns, readDoc, renderTable, scrapeRuns, splitDoc, writeDocTable } from './lib/metrics-reference.mjs';

const runs = await scrapeRuns();
const table = renderTable(mergeRuns(runs));
const { table: old } = splitDoc(await readDoc());
if (old === table) {
  console.log('docs/operations.md: the metrics reference is up to date');
} else {
  await writeDocTable(table);
  console.log(`docs/operations.md: metrics reference rewritten (${table.split('\n').length - 2} metrics)`);
}
process.exit(0);
