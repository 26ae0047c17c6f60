// The metrics reference of docs/operations.md, generated from the binary's own /metrics.
//
//   const runs = await scrapeRuns();              // fresh nodes: embedded default, memory, Redis
//   const families = mergeRuns(runs);             // name -> {name, type, help, labels}
//   renderTable(families)                         // the Markdown table
//   readDocTable() / writeDocTable(table)         // the table between the markers in the doc
//
// The table has one row per metric family a node exposes (name, type, label names, HELP text).
// `metrics-reference.test.mjs` fails when it differs from what the binary exposes;
// `node gen-metrics-reference.mjs` (or `make metrics-reference`) rewrites it.

import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

import { REPO_ROOT, freePort, makeApp, spawnFerrocast, startCluster, waitForExit } from './server.mjs';
import { sleep } from './util.mjs';

export const DOC_PATH = path.join(REPO_ROOT, 'docs', 'operations.md');
export const BEGIN_MARKER =
  '<!-- BEGIN metrics reference: generated from the /metrics of the release binary by `make metrics-reference`; do not edit by hand -->';
export const END_MARKER = '<!-- END metrics reference -->';
export const REGENERATE_HINT =
  'Regenerate the table with `make metrics-reference` (or `cargo build --release && node tests/conformance/gen-metrics-reference.mjs`), ' +
  'then review the diff of docs/operations.md: the meaning column is each metric\'s HELP text in crates/server/src/metrics.rs.';

const SUFFIXES = { histogram: ['_bucket', '_sum', '_count'], summary: ['_sum', '_count', ''] };
/** Labels that belong to the type (the bucket bound, the quantile), not to the metric. */
const TYPE_LABELS = { histogram: ['le'], summary: ['quantile'] };

function unescapeHelp(text) {
  return text.replace(/\\(\\|n)/g, (_, c) => (c === 'n' ? '\n' : '\\'));
}

/**
 * Parses a Prometheus text exposition into families: name -> {name, type, help, labels (Set),
 * samples [{name, labels, value}]}. Throws on a sample that belongs to no announced family, a
 * family without HELP or TYPE, or a line it cannot read.
 */
export function parseFamilies(text) {
  const families = new Map();
  const family = (name) => {
    if (!families.has(name)) families.set(name, { name, type: undefined, help: undefined, labels: new Set(), samples: [] });
    return families.get(name);
  };
  let current;
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (!line) continue;
    let m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (m) {
      current = family(m[1]);
      current.help = unescapeHelp(m[2]);
      continue;
    }
    m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (m) {
      current = family(m[1]);
      current.type = m[2];
      continue;
    }
    if (line.startsWith('#')) continue;
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?$/.exec(line);
    if (!m) throw new Error(`unreadable /metrics line ${JSON.stringify(line)}`);
    const [, name, , labelText, value] = m;
    const suffixes = SUFFIXES[current?.type] ?? [''];
    if (!current || !suffixes.some((s) => name === current.name + s)) {
      throw new Error(`sample ${name} follows no HELP/TYPE of its family (last family: ${current?.name})`);
    }
    const labels = {};
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
    let lm;
    while ((lm = re.exec(labelText ?? '')) !== null) labels[lm[1]] = lm[2].replace(/\\(.)/g, '$1');
    for (const label of Object.keys(labels)) {
      if (!(TYPE_LABELS[current.type] ?? []).includes(label)) current.labels.add(label);
    }
    current.samples.push({ name, labels, value: Number(value) });
  }
  for (const f of families.values()) {
    if (f.type === undefined || f.help === undefined) throw new Error(`metric ${f.name} lacks a TYPE or HELP line`);
  }
  return families;
}

/**
 * The union of the families of several scrapes. A family seen in several runs must have the same
 * type and HELP in each; its labels are the union.
 */
export function mergeRuns(runs) {
  const merged = new Map();
  for (const run of runs) {
    for (const f of run.families.values()) {
      const seen = merged.get(f.name);
      if (!seen) {
        merged.set(f.name, { name: f.name, type: f.type, help: f.help, labels: new Set(f.labels), runs: [run.name] });
        continue;
      }
      if (seen.type !== f.type || seen.help !== f.help) {
        throw new Error(
          `${f.name} differs between runs: ${seen.type} ${JSON.stringify(seen.help)} (${seen.runs}) vs ` +
            `${f.type} ${JSON.stringify(f.help)} (${run.name})`,
        );
      }
      for (const l of f.labels) seen.labels.add(l);
      seen.runs.push(run.name);
    }
  }
  return merged;
}

function cell(text) {
  return text.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ');
}

/** One row per family, sorted by name: metric, type, labels, meaning (the HELP text). */
export function tableRows(families) {
  return [...families.values()]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((f) => ({
      name: f.name,
      line:
        `| \`${f.name}\` | ${f.type} | ` +
        `${[...f.labels].sort().map((l) => `\`${l}\``).join(', ')} | ${cell(f.help)} |`,
    }));
}

export function renderTable(families) {
  return ['| metric | type | labels | meaning |', '|---|---|---|---|', ...tableRows(families).map((r) => r.line)].join('\n');
}

/** The Markdown between the markers, and the text around it. Throws when the markers are missing. */
export function splitDoc(markdown) {
  const begin = markdown.indexOf(BEGIN_MARKER);
  const end = markdown.indexOf(END_MARKER);
  if (begin < 0 || end < begin || markdown.indexOf(BEGIN_MARKER, begin + 1) >= 0) {
    throw new Error(
      `docs/operations.md must contain the metrics reference between exactly one pair of markers:\n${BEGIN_MARKER}\n...\n${END_MARKER}`,
    );
  }
  const start = begin + BEGIN_MARKER.length;
  return { before: markdown.slice(0, start), table: markdown.slice(start, end).trim(), after: markdown.slice(end) };
}

/** The rows of the documented table: metric name -> the row's line. */
export function docRows(table) {
  const rows = new Map();
  for (const line of table.split('\n')) {
    const m = /^\| `([^`]+)` \|/.exec(line.trim());
    if (m) rows.set(m[1], line.trim());
  }
  return rows;
}

export async function readDoc() {
  return readFile(DOC_PATH, 'utf8');
}

export async function writeDocTable(table) {
  const { before, after } = splitDoc(await readDoc());
  await writeFile(DOC_PATH, `${before}\n${table}\n${after}`);
}

// ---------------------------------------------------------------------------------------------
// Fresh nodes

async function scrapeText(metricsUrl) {
  const res = await fetch(`${metricsUrl}/metrics`, { signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET ${metricsUrl}/metrics → ${res.status}: ${text.slice(0, 300)}`);
  return text;
}

/** `ferrocast` without arguments (the embedded default: the demo app on the memory backplane). */
async function scrapeEmbeddedDefault() {
  const port = await freePort();
  const metricsPort = await freePort();
  // Only the listeners move (two nodes may run at once); the rest is the embedded default.
  const proc = spawnFerrocast([], {
    env: {
      FERROCAST_SERVER__HOST: '127.0.0.1',
      FERROCAST_SERVER__PORT: String(port),
      FERROCAST_SERVER__METRICS_PORT: String(metricsPort),
      FERROCAST_SERVER__SHUTDOWN_GRACE_S: '1',
    },
  });
  const metricsUrl = `http://127.0.0.1:${metricsPort}`;
  try {
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (proc.state.exitCode !== undefined || proc.state.signal !== undefined || proc.state.spawnError) {
        throw new Error(`ferrocast (no arguments) exited before it was ready\n${proc.state.stderr}\n${proc.state.stdout}`);
      }
      const status = await fetch(`${metricsUrl}/readyz`, { signal: AbortSignal.timeout(1000) })
        .then(async (r) => {
          await r.arrayBuffer();
          return r.status;
        })
        .catch(() => undefined);
      if (status === 200) break;
      if (Date.now() > deadline) throw new Error(`ferrocast (no arguments) not ready after 20 s\n${proc.state.stderr}`);
      await sleep(50);
    }
    const text = await scrapeText(metricsUrl);
    return { name: 'embedded default', apps: ['app-id'], hooked: [], text, families: parseFamilies(text) };
  } finally {
    if (proc.state.exitCode === undefined && proc.state.signal === undefined) proc.child.kill('SIGTERM');
    await waitForExit(proc, 10_000);
  }
}

/**
 * A node with everything that adds metrics: two apps, one of them with a webhook (its URL is
 * never called: nothing happens on the node before the scrape).
 */
async function scrapeFullConfig(driver) {
  const plain = makeApp();
  const hooked = makeApp({ webhooks: [{ url: 'http://127.0.0.1:9/never-called' }] });
  const cluster = await startCluster(1, { apps: [plain, hooked], backplane: { driver } });
  try {
    const text = await scrapeText(cluster.client.metricsUrl);
    return { name: `${driver} backplane`, apps: [plain.id, hooked.id], hooked: [hooked.id], text, families: parseFamilies(text) };
  } catch (err) {
    throw new Error(`${err.message}\n${cluster.logs()}`, { cause: err });
  } finally {
    await cluster.stop();
  }
}

/**
 * Scrapes of fresh nodes (ready, no traffic yet): the binary without arguments, and a full config
 * on the memory and on the Redis backplane (a private redis-server).
 */
export async function scrapeRuns() {
  return [await scrapeEmbeddedDefault(), await scrapeFullConfig('memory'), await scrapeFullConfig('redis')];
}
