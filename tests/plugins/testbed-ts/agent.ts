// `testbed-ts`: what the tests ask of a TypeScript agent, by input.
//
// - `errors`: calls that fail in each way the host reports, and what
//   arrived (exception class and message, as JSON);
// - `batch`: one `callTools` batch mixing good and bad calls;
// - `escape`: looks for fetch, process, require and Deno; `fetch:PORT`
//   tries fetch to 127.0.0.1:PORT; each reports what it got;
// - `hog`: allocates without end; `spin`: loops without end;
// - `raise`: throws an error of its own; `json`: answers with an object;
// - `calls:N:SERVER`: calls SERVER's `echo` N times (for the benchmarks).
import { CallError, agent, callTool, callTools, type Json } from 'weir-guest';

function failure(call: () => unknown): string {
  try {
    call();
    return 'no error';
  } catch (error) {
    if (error instanceof CallError) return `${error.name}: ${error.message}`;
    return `not a CallError: ${String(error)}`;
  }
}

function errors(): Json {
  return {
    denied: failure(() => callTool('builtin', 'kv_set', { key: 'k', value: 'v' })),
    not_found: failure(() => callTool('builtin', 'nosuch')),
    no_server: failure(() => callTool('nowhere', 'echo', { message: 'x' })),
    too_big: failure(() => callTool('builtin', 'echo', { message: 'x'.repeat(100_000) })),
    invalid_not_object: failure(() =>
      callTool('builtin', 'echo', [1, 2] as unknown as { [key: string]: Json }),
    ),
    tool_error: callTool('builtin', 'add', { a: 'one', b: 2 }).isError,
    ok: callTool('builtin', 'add', { a: 2, b: 3 }).text,
  };
}

function batch(): Json {
  return callTools([
    { server: 'builtin', tool: 'echo', arguments: { message: 'first' } },
    { server: 'builtin', tool: 'kv_set', arguments: { key: 'k', value: 'v' } },
    { server: 'builtin', tool: 'echo', arguments: { message: 'third' } },
  ]).map((r) => (r instanceof CallError ? r.name : r.text));
}

function escape(port: string): Json {
  const g = globalThis as Record<string, unknown>;
  return {
    fetch: typeof g.fetch,
    process: typeof g.process,
    require: typeof g.require,
    deno: typeof g.Deno,
    env: typeof (g.process as { env?: unknown } | undefined)?.env,
  };
}

// A component without wasi:http has nothing to fetch with: the call fails
// (or the run ends) and no connection is made.
function fetchOut(port: string): Json {
  const g = globalThis as Record<string, unknown>;
  let fetched: string;
  try {
    const f = g.fetch as ((url: string) => Promise<unknown>) | undefined;
    if (typeof f !== 'function') {
      fetched = 'absent';
    } else {
      const pending = f(`http://127.0.0.1:${port}/`);
      fetched = 'pending';
      pending.then(
        () => { fetched = 'answered'; },
        () => { fetched = 'rejected'; },
      );
    }
  } catch (error) {
    fetched = `error(${String(error)})`;
  }
  return fetched;
}

function hog(): never {
  const chunks: Uint8Array[] = [];
  for (;;) chunks.push(new Uint8Array(1 << 20).fill(1));
}

function spin(): never {
  let n = 0;
  for (;;) n += 1;
}

export const run = agent((input: string): Json => {
  const at = input.indexOf(':');
  const mode = at < 0 ? input : input.slice(0, at);
  const arg = at < 0 ? '' : input.slice(at + 1);
  switch (mode) {
    case 'errors':
      return errors();
    case 'batch':
      return batch();
    case 'escape':
      return escape(arg);
    case 'fetch':
      return fetchOut(arg);
    case 'hog':
      return hog();
    case 'spin':
      return spin();
    case 'raise':
      throw new RangeError('raised on request');
    case 'json':
      return { input: arg, n: 3 };
    case 'calls': {
      const [count, server] = arg.split(':');
      let ok = 0;
      for (let i = 0; i < Number(count); i++) {
        if (!callTool(server, 'echo', { message: 'hi' }).isError) ok += 1;
      }
      return { calls: Number(count), ok };
    }
    default:
      return `unknown mode ${mode}`;
  }
});
