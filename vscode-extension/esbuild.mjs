// Bundles the extension into dist/extension.js (one file; `vscode` is provided by the editor).
import { build } from "esbuild";

await build({
  entryPoints: ["src/extension.ts"],
  bundle: true,
  platform: "node",
  target: "node20",
  format: "cjs",
  external: ["vscode"],
  outfile: "dist/extension.js",
  minify: true,
  sourcemap: false,
  logLevel: "warning",
});
