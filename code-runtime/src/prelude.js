// The script's world in code mode, set up once before the host snapshots
// the engine. It is one function of the host's natives; everything it
// needs is captured here, so a script that overwrites a global (JSON,
// Promise, Object.prototype…) changes only its own view, never how its
// calls reach the host or how its answer is read.
(function (native) {
  'use strict';
  const { stringify, parse } = JSON;
  const { defineProperty, freeze, create, keys } = Object;
  const StringOf = String;
  const PromiseOf = Promise;
  const isArray = Array.isArray;

  /** A tool call that did not give a result: refused by the host, failed
   * on the way, or answered with `isError`. `kind` says which. */
  class ToolError extends Error {
    constructor(kind, message, server, tool) {
      super(message);
      this.name = 'ToolError';
      this.kind = kind;
      this.server = server;
      this.tool = tool;
    }
  }

  // Where in the script each error this prelude makes was caused: the
  // engine would name the prelude's line, or none. Out of the script's reach.
  const placed = new WeakMap();
  function placedAt(error, line, column) {
    if (line !== undefined) placed.set(error, [line, column]);
    return error;
  }
  function mistake(error) {
    const at = native.place();
    return at ? placedAt(error, at[0], at[1]) : error;
  }
  // Errors whose message names what in the script is wrong (a tool that
  // is not granted): the model finds it by name. They are not placed: the
  // engine's record of where a property access is can be stale.
  const named = new WeakSet();
  function naming(error) {
    named.add(error);
    return error;
  }

  function describe(value) {
    if (typeof value === 'string') return stringify(value);
    if (value === null || typeof value !== 'object') return StringOf(value);
    return isArray(value) ? 'an array' : 'an object';
  }

  /** Calls `tool` on `server` with `args` (a JSON object). Calls made
   * without waiting between them (`Promise.all`) go out together. The
   * runtime settles the promise: with the tool's structured content when
   * it gave one, else its text; or with a ToolError. */
  function callTool(server, tool, args) {
    return new PromiseOf((resolve, reject) => {
      if (typeof server !== 'string' || typeof tool !== 'string') {
        throw mistake(
          new TypeError(
            `callTool(server, tool, args) takes two strings, got ${describe(server)} and ${describe(tool)}`,
          ),
        );
      }
      let text = '';
      if (args !== undefined && args !== null) {
        if (typeof args !== 'object' || isArray(args)) {
          throw mistake(
            new ToolError(
              'invalid_arguments',
              `the arguments of ${server}.${tool} must be an object, got ${describe(args)}`,
              server,
              tool,
            ),
          );
        }
        text = stringify(args);
      }
      native.enqueue(server, tool, text, resolve, (kind, message, line, column) =>
        reject(placedAt(new ToolError(kind, `${server}.${tool}: ${message}`, server, tool), line, column)),
      );
    });
  }

  // One valid identifier per name; `tools["a-b"]` works as well.
  function ident(name) {
    let id = StringOf(name).replace(/[^A-Za-z0-9_$]/g, '_');
    if (id === '' || /^[0-9]/.test(id)) id = '_' + id;
    return id;
  }

  function parseTools(text) {
    return parse(text).map((t) => ({
      server: t.server,
      name: t.name,
      description: t.description ?? '',
    }));
  }

  // A name the script got wrong is a TypeError naming what there is,
  // not `undefined is not a function`. The names that exist are the
  // object's own (frozen) properties, found without a trap; only a miss
  // reaches the guard behind them.
  const quiet = new Set(['then', 'toJSON', 'constructor', 'valueOf', 'toString']);
  function guarded(names, label, what) {
    const guard = new Proxy(create(null), {
      get(_, key) {
        if (typeof key === 'symbol' || quiet.has(key)) return undefined;
        const known = keys(names).filter((k) => k === ident(k));
        throw naming(
          new TypeError(
            `${label}.${StringOf(key)}: no such ${what} is granted; there are: ${known.join(', ') || 'none'}`,
          ),
        );
      },
    });
    const object = create(guard);
    for (const k of keys(names)) {
      defineProperty(object, k, { value: names[k], enumerable: true, writable: false, configurable: false });
    }
    return freeze(object);
  }

  let toolsObject;
  function buildTools() {
    const root = create(null);
    for (const t of parseTools(native.listTools())) {
      for (const serverKey of new Set([ident(t.server), t.server])) {
        const server = root[serverKey] ?? (root[serverKey] = create(null));
        const call = (args) => callTool(t.server, t.name, args);
        for (const toolKey of new Set([ident(t.name), t.name])) {
          if (!(toolKey in server)) server[toolKey] = call;
        }
      }
    }
    for (const k of keys(root)) root[k] = guarded(root[k], `tools.${k}`, 'tool');
    return guarded(root, 'tools', 'server');
  }

  /** The granted tools that best match `query`, best first. */
  function searchTools(query, limit) {
    if (typeof query !== 'string') {
      throw mistake(new TypeError(`searchTools(query, limit?) takes a string, got ${describe(query)}`));
    }
    const n = limit === undefined ? 10 : Number(limit);
    return Promise.resolve(parseTools(native.searchTools(query, n > 0 ? n : 10)));
  }

  function format(value, seen) {
    if (typeof value === 'string') return value;
    if (typeof value === 'function') return `[Function ${value.name || 'anonymous'}]`;
    if (typeof value === 'bigint') return `${value}n`;
    if (typeof value === 'symbol' || value === undefined) return StringOf(value);
    if (value instanceof Error) return `${value.name}: ${value.message}`;
    try {
      return stringify(value, (key, v) => {
        if (typeof v === 'bigint') return `${v}n`;
        if (typeof v === 'function') return `[Function ${v.name || 'anonymous'}]`;
        if (v !== null && typeof v === 'object') {
          if (seen.has(v)) return '[Circular]';
          seen.add(v);
        }
        return v;
      }) ?? StringOf(value);
    } catch (error) {
      return StringOf(value);
    }
  }

  function log(...args) {
    native.print(args.map((a) => format(a, new Set())).join(' '));
  }
  const console = freeze({
    log,
    info: log,
    debug: log,
    warn: log,
    error: log,
  });

  const fixed = { writable: false, configurable: false, enumerable: false };
  defineProperty(globalThis, 'callTool', { value: callTool, ...fixed });
  defineProperty(globalThis, 'searchTools', { value: searchTools, ...fixed });
  defineProperty(globalThis, 'ToolError', { value: ToolError, ...fixed });
  defineProperty(globalThis, 'console', { value: console, ...fixed });
  defineProperty(globalThis, 'tools', {
    get() {
      return toolsObject ?? (toolsObject = buildTools());
    },
    configurable: false,
    enumerable: false,
  });

  // What the driver uses to read the answer: JSON text, or a TypeError
  // saying why the value is not JSON.
  function encode(value) {
    if (value === undefined) return 'null';
    let text;
    try {
      text = stringify(value, (key, v) => {
        if (typeof v === 'bigint') {
          throw new TypeError(`a BigInt (${v}n) is not JSON; return it as a string or a number`);
        }
        return v;
      });
    } catch (error) {
      if (error instanceof TypeError && /cycl|circular/i.test(error.message)) {
        throw new TypeError('the returned value refers to itself (a cycle) and cannot be JSON');
      }
      throw error;
    }
    return text === undefined ? 'null' : text;
  }

  function explain(error) {
    const at = error !== null && typeof error === 'object' ? placed.get(error) : undefined;
    const where = at ? { line: at[0], column: at[1] } : named.has(error) ? { named: true } : {};
    if (error instanceof ToolError) {
      return { kind: error.kind, message: error.message, server: error.server, tool: error.tool, ...where };
    }
    if (error instanceof Error) {
      return { kind: 'exception', name: StringOf(error.name), message: StringOf(error.message), ...where };
    }
    return { kind: 'thrown', message: `the script threw ${format(error, new Set())}, not an Error` };
  }

  return { encode, explain: (error) => stringify(explain(error)) };
});
