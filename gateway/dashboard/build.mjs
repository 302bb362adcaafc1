#!/usr/bin/env node
// Bundles src/ into dist/ (committed; the gateway embeds it at build time):
//   dist/index.html, dist/app-<hash>.js, dist/app-<hash>.css
// Content-hashed names let the gateway cache the assets forever; index.html is the one
// file to revalidate. The output depends only on src/ and the pinned versions of
// package-lock.json, so a rebuild on any machine gives the same bytes.
//
//   node build.mjs           write dist/ and print the sizes
//   node build.mjs --check   fail when dist/ (and src/gen/, when every .proto input is
//                            present) differs from what src/ builds to; writes nothing

import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import * as esbuild from "esbuild";

const root = dirname(fileURLToPath(import.meta.url));
const dist = join(root, "dist");
const check = process.argv.includes("--check");

/** The bundle as { name: bytes } in memory. */
async function bundle() {
  const result = await esbuild.build({
    absWorkingDir: root,
    entryPoints: { app: "src/main.ts" },
    bundle: true,
    minify: true,
    format: "esm",
    target: ["es2022", "chrome100", "firefox100", "safari15.4"],
    entryNames: "[name]-[hash]",
    outdir: "dist",
    write: false,
    charset: "utf8",
    legalComments: "eof",
    sourcemap: false,
    logLevel: "warning",
  });
  const files = new Map();
  let js;
  let css;
  for (const out of result.outputFiles) {
    const name = relative(dist, out.path);
    files.set(name, Buffer.from(out.contents));
    if (name.endsWith(".js")) js = name;
    if (name.endsWith(".css")) css = name;
  }
  if (!js || !css) throw new Error("esbuild produced no js or css");
  const html = readFileSync(join(root, "src/index.html"), "utf8").replace("{{js}}", js).replace("{{css}}", css);
  if (html.includes("{{")) throw new Error("src/index.html has an unknown placeholder");
  files.set("index.html", Buffer.from(html));
  return files;
}

function listFiles(dir) {
  if (!existsSync(dir)) return new Map();
  const files = new Map();
  const walk = (d) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      if (entry.isDirectory()) walk(path);
      else files.set(relative(dir, path), readFileSync(path));
    }
  };
  walk(dir);
  return files;
}

function diff(label, want, have) {
  const problems = [];
  for (const [name, bytes] of want) {
    const got = have.get(name);
    if (!got) problems.push(`${label}/${name} is missing`);
    else if (!got.equals(bytes)) problems.push(`${label}/${name} differs`);
  }
  for (const name of have.keys()) if (!want.has(name)) problems.push(`${label}/${name} is stale`);
  return problems;
}

/** The .proto inputs of buf.gen.yaml (paths relative to this directory). */
function protoInputs() {
  const yaml = readFileSync(join(root, "buf.gen.yaml"), "utf8");
  return [...yaml.matchAll(/^\s+- (\S+\.proto)\s*$/gm)].map((m) => m[1]);
}

if (check) {
  const problems = [];
  const missing = protoInputs().filter((p) => !existsSync(join(root, p)));
  if (missing.length) {
    console.log(`NOTE: ${missing.join(", ")} not present: src/gen/ is not regenerated, only dist/ is checked`);
  } else {
    const out = mkdtempSync(join(tmpdir(), "phoenix-dashboard-gen-"));
    try {
      // protoc-gen-es from node_modules/.bin, also when run without npm.
      const PATH = `${join(root, "node_modules/.bin")}:${process.env.PATH ?? ""}`;
      execFileSync(join(root, "node_modules/.bin/buf"), ["generate", "--output", out], {
        cwd: root,
        stdio: "inherit",
        env: { ...process.env, PATH },
      });
      problems.push(...diff("src/gen", listFiles(join(out, "src/gen")), listFiles(join(root, "src/gen"))));
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }
  problems.push(...diff("dist", await bundle(), listFiles(dist)));
  if (problems.length) {
    console.error("The committed dashboard build is out of date with its sources:");
    for (const p of problems) console.error(`  ${p}`);
    console.error("Rebuild with: (cd gateway/dashboard && npm ci && npm run build), then commit src/gen and dist.");
    process.exit(1);
  }
  console.log(`dashboard: ${missing.length ? "dist/ is" : "dist/ and src/gen/ are"} up to date`);
} else {
  const files = await bundle();
  rmSync(dist, { recursive: true, force: true });
  mkdirSync(dist, { recursive: true });
  let raw = 0;
  let gz = 0;
  for (const [name, bytes] of [...files].sort(([a], [b]) => a.localeCompare(b))) {
    writeFileSync(join(dist, name), bytes);
    const zipped = gzipSync(bytes, { level: 9 }).length;
    raw += bytes.length;
    gz += zipped;
    console.log(`  dist/${name.padEnd(24)} ${String(bytes.length).padStart(7)} B  ${String(zipped).padStart(6)} B gzip`);
  }
  console.log(`  ${"total".padEnd(29)} ${String(raw).padStart(7)} B  ${String(gz).padStart(6)} B gzip`);
}
