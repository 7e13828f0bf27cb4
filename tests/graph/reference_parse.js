// Parse many .fbp texts with the reference parser in one node process.
// Usage: node reference_parse.js MODULE_DIR < cases.json > results.json
// cases.json: [{"text": "...", "caseSensitive": bool}, ...]
// Each result is {"ok": graph} or {"error": message, "line": n, "column": n}.
const path = require("path");
const fbp = require(path.join(process.argv[2], "node_modules", "fbp"));
let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
  const results = JSON.parse(input).map((c) => {
    try {
      return { ok: fbp.parse(c.text, { caseSensitive: c.caseSensitive }) };
    } catch (e) {
      const loc = e.location ? e.location.start : null;
      return { error: String(e.message), line: loc ? loc.line : null, column: loc ? loc.column : null };
    }
  });
  process.stdout.write(JSON.stringify(results));
});
