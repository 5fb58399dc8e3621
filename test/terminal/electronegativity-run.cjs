// Runs electronegativity through its programmatic API and prints the issues as JSON on stdout.
// (Its CSV writer races its header write against the rows, which corrupted reports under load.)
require('./no-network.cjs');
const run = require('@doyensec/electronegativity');
const [input, electronVersion, exclude] = process.argv.slice(2);
run({
  input,
  output: undefined,
  isSarif: false,
  customScan: [],
  excludeFromScan: exclude ? exclude.split(',').map((c) => c.trim().toLowerCase()) : [],
  severitySet: undefined,
  confidenceSet: undefined,
  isRelative: false,
  isVerbose: false,
  electronUpgrade: undefined,
  electronVersionOverride: electronVersion,
  parserPlugins: [],
}, false).then((r) => {
  const issues = r.issues.map((i) => ({ id: i.id, severity: i.severity.name, confidence: i.confidence.name, file: i.file, line: i.location.line, sample: i.sample }));
  // The tool prints its own chatter on stdout: the report is the last line.
  process.stdout.write('\n' + JSON.stringify({ errors: r.errors.length, issues }) + '\n');
}).catch((err) => {
  console.error(err && err.stack || String(err));
  process.exit(1);
});
