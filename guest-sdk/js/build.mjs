#!/usr/bin/env node
// Builds a JavaScript or TypeScript agent into a weir component, the way
// `weir build` asks for it:
//
//   node build.mjs ENTRY --wit DIR --world agent --out FILE [--engine E]
//
// 1. TypeScript is type-checked against weir.d.ts (errors fail the build);
// 2. the agent and this SDK are bundled into one module (the componentizers
//    take one file), `weir:` imports left to the host;
// 3. the component is made with one of two JS engines:
//    - `starlingmonkey` (default): componentize-js, SpiderMonkey inside
//      (~12 MB), with wasi:http and the fetch event left out — the sandbox
//      gives no network, so the component must not import one;
//    - `quickjs`: componentize-qjs (~1.6 MB, compiles in a second), its
//      synchronous runtime; it has no fetch at all.
import { componentize } from '@bytecodealliance/componentize-js';
import { rolldown } from 'rolldown';
import ts from 'typescript';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const sdk = dirname(fileURLToPath(import.meta.url));

function fail(message) {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

function typeCheck(entry) {
  const program = ts.createProgram([entry], {
    strict: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    lib: ['lib.es2022.d.ts'],
    types: [],
    skipLibCheck: true,
    paths: { 'weir-guest': [join(sdk, 'weir.d.ts')] },
  });
  const diagnostics = ts.getPreEmitDiagnostics(program);
  if (diagnostics.length > 0) {
    const host = {
      getCanonicalFileName: (f) => f,
      getCurrentDirectory: () => process.cwd(),
      getNewLine: () => '\n',
    };
    fail(ts.formatDiagnostics(diagnostics, host).trimEnd());
  }
}

async function bundle(entry) {
  const build = await rolldown({
    input: entry,
    external: [/^weir:/],
    resolve: { alias: { 'weir-guest': join(sdk, 'weir.js') } },
    // An editor's tsconfig maps `weir-guest` to the types; bundle the code.
    tsconfig: false,
    logLevel: 'silent',
  });
  const { output } = await build.generate({ format: 'esm' });
  await build.close();
  return output[0].code;
}

async function main() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      wit: { type: 'string' },
      world: { type: 'string', default: 'agent' },
      out: { type: 'string' },
      engine: { type: 'string', default: 'starlingmonkey' },
    },
  });
  if (positionals.length !== 1 || !values.wit || !values.out) {
    fail('usage: build.mjs ENTRY --wit DIR [--world NAME] --out FILE [--engine starlingmonkey|quickjs]');
  }
  if (!['starlingmonkey', 'quickjs'].includes(values.engine)) {
    fail(`unknown JS engine ${values.engine}: use starlingmonkey or quickjs`);
  }
  const entry = resolve(positionals[0]);
  if (entry.endsWith('.ts')) typeCheck(entry);
  const code = await bundle(entry);
  const work = await mkdtemp(join(tmpdir(), 'weir-js-'));
  try {
    const source = join(work, 'agent.js');
    await writeFile(source, code);
    if (values.engine === 'quickjs') {
      const qjs = join(sdk, 'node_modules', '.bin', 'componentize-qjs');
      const made = spawnSync(
        qjs,
        ['--wit', resolve(values.wit), '--world', values.world, '--js', source, '--sync',
          '--output', resolve(values.out)],
        { encoding: 'utf8' },
      );
      if (made.error) fail(`cannot run ${qjs}: ${made.error.message}`);
      if (made.status !== 0) fail(`${made.stderr}${made.stdout}`.trimEnd());
    } else {
      const { component } = await componentize({
        sourcePath: source,
        witPath: resolve(values.wit),
        worldName: values.world,
        disableFeatures: ['http', 'fetch-event'],
      });
      await writeFile(values.out, component);
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((error) => fail(String(error?.stack ?? error)));
