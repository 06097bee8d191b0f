// The peers' code-mode executors, measured against the same MCP server
// weir's code mode calls, on the same scripts, in the same benchmark run
// (weir-bench starts this and prints the figures beside weir's):
//
// - a fresh V8 isolate per execution (npm isolated-vm), the kind of
//   executor Cloudflare's Code Mode uses; tool functions are references
//   into this process, which holds one MCP client session;
// - a fresh Deno process per execution (npm deno), the kind IBM's
//   context-forge and pydantic's sandboxes use; no permissions, tool calls
//   go out as JSON lines on its stdout and answers come back on stdin.
//
// Usage: node harness.mjs '{"server": {"command": …, "args": […]},
//   "empty": {"isolate": N, "deno": M}, "rounds": R,
//   "scripts": {"name": "code", …}}'
// Prints one JSON object: per executor, the empty script's p50/p99 and
// each named script's median whole-execution time, and what each script
// returned (so weir-bench can check the answers are right).

import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";

import ivm from "isolated-vm";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const config = JSON.parse(process.argv[2]);
const require = createRequire(import.meta.url);
const deno = join(dirname(require.resolve("@deno/linux-x64-glibc/package.json")), "deno");

const client = new Client({ name: "weir-bench-peers", version: "1.0.0" });
await client.connect(
  new StdioClientTransport({ ...config.server, stderr: "ignore" }),
);

/** One tool call on the shared session: structured content when the tool
 * has it, else its text (what weir's code mode gives a script). */
async function callTool(_server, tool, args) {
  const result = await client.callTool({ name: tool, arguments: args });
  if (result.isError) throw new Error(result.content.map((c) => c.text).join(""));
  return result.structuredContent ?? result.content.map((c) => c.text ?? "").join("");
}

/** What every script sees: `tools.<server>.<tool>(args)`. */
const TOOLS_PROXY = `new Proxy({}, { get: (_, server) => new Proxy({}, {
  get: (_, tool) => (args) => __call(String(server), String(tool), args ?? {}) }) })`;

async function inIsolate(code) {
  const isolate = new ivm.Isolate({ memoryLimit: 64 });
  try {
    const context = await isolate.createContext();
    await context.global.set(
      "__callRef",
      new ivm.Reference(async (server, tool, args) =>
        JSON.stringify(await callTool(server, tool, JSON.parse(args))),
      ),
    );
    const wrapped = `(async () => {
      const __call = async (s, t, a) => JSON.parse(await __callRef.apply(undefined,
        [s, t, JSON.stringify(a)], { result: { promise: true } }));
      const tools = ${TOOLS_PROXY};
      const value = await (async () => { ${code}\n })();
      return JSON.stringify(value ?? null);
    })()`;
    const text = await context.eval(wrapped, { promise: true, timeout: 30000 });
    return JSON.parse(text);
  } finally {
    isolate.dispose();
  }
}

const denoDir = mkdtempSync(join(tmpdir(), "weir-bench-deno-"));
const denoFiles = new Map();

function denoScript(code) {
  if (!denoFiles.has(code)) {
    const file = join(denoDir, `script-${denoFiles.size}.js`);
    writeFileSync(
      file,
      `const waiting = new Map(); let next = 0;
      const out = new TextEncoder();
      const send = (m) => Deno.stdout.writeSync(out.encode(JSON.stringify(m) + "\\n"));
      (async () => {
        let buffered = "";
        for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
          buffered += chunk;
          for (let at; (at = buffered.indexOf("\\n")) >= 0; ) {
            const answer = JSON.parse(buffered.slice(0, at));
            buffered = buffered.slice(at + 1);
            waiting.get(answer.id)(answer.value);
            waiting.delete(answer.id);
          }
        }
      })();
      const __call = (server, tool, args) => new Promise((resolve) => {
        const id = next++; waiting.set(id, resolve); send({ id, server, tool, args });
      });
      const tools = ${TOOLS_PROXY};
      const value = await (async () => { ${code}\n })();
      send({ done: value ?? null });
      Deno.exit(0);
      `,
    );
    denoFiles.set(code, file);
  }
  return denoFiles.get(code);
}

function inDeno(code) {
  return new Promise((resolve, reject) => {
    const child = spawn(deno, ["run", "--quiet", "--no-prompt", "--no-config", denoScript(code)], {
      stdio: ["pipe", "pipe", "inherit"],
      env: { ...process.env, DENO_DIR: denoDir, NO_COLOR: "1" },
    });
    let value;
    createInterface({ input: child.stdout }).on("line", async (line) => {
      const message = JSON.parse(line);
      if ("done" in message) {
        value = message.done;
        return;
      }
      const answer = await callTool(message.server, message.tool, message.args);
      child.stdin.write(JSON.stringify({ id: message.id, value: answer }) + "\n");
    });
    child.on("error", reject);
    child.on("exit", (status) =>
      status === 0 ? resolve(value) : reject(new Error(`deno exited ${status}`)),
    );
  });
}

function percentile(sorted, p) {
  return sorted[Math.round((sorted.length - 1) * p)] ?? 0;
}

async function measure(run, emptyRuns) {
  const empty = [];
  for (let i = 0; i < emptyRuns; i++) {
    const start = process.hrtime.bigint();
    await run("");
    empty.push(Number(process.hrtime.bigint() - start) / 1e3);
  }
  empty.sort((a, b) => a - b);
  const scripts = {};
  for (const [name, code] of Object.entries(config.scripts)) {
    const times = [];
    let value;
    for (let i = 0; i < config.rounds; i++) {
      const start = process.hrtime.bigint();
      value = await run(code);
      times.push(Number(process.hrtime.bigint() - start) / 1e6);
    }
    times.sort((a, b) => a - b);
    scripts[name] = { median_ms: percentile(times, 0.5), value };
  }
  return {
    empty_p50_us: percentile(empty, 0.5),
    empty_p99_us: percentile(empty, 0.99),
    scripts,
  };
}

// Warm both up (JIT, Deno's cache) before measuring.
for (let i = 0; i < 3; i++) {
  await inIsolate("");
  await inDeno("");
}
const report = {
  isolate: await measure(inIsolate, config.empty.isolate),
  deno: await measure(inDeno, config.empty.deno),
};
await client.close();
rmSync(denoDir, { recursive: true, force: true });
process.stdout.write(JSON.stringify(report) + "\n");
