// weir's guest SDK for JavaScript and TypeScript agents.
//
// An agent is one function wrapped by `agent`. It runs inside weir's
// WebAssembly sandbox, where its only way out is the host's tool calls: no
// sockets, no fetch, no files, no environment. Every call goes over the
// sessions the host owns, so an agent cannot open a connection per call
// however it is written. `weir build DIR` bundles the agent with this
// module and turns it into a component (see build.mjs).
import * as mcp from 'weir:agent/mcp@0.1.0';

/** The host did not return a tool result. A tool that ran and failed is
 * not one of these: it is a ToolResult with `isError` set. */
export class CallError extends Error {
  constructor(kind, detail) {
    super(detail ? `${kind}: ${detail}` : kind);
    this.name = new.target.name;
    this.kind = kind;
    this.detail = detail ?? '';
  }
}
/** The host's policy refused the call (tool not granted, budget spent). */
export class Denied extends CallError {
  constructor(detail) { super('denied', detail); }
}
/** No such server, or the server has no such tool. */
export class NotFound extends CallError {
  constructor(detail) { super('not found', detail); }
}
/** The arguments were not a JSON object, or the server rejected them. */
export class InvalidArguments extends CallError {
  constructor(detail) { super('invalid arguments', detail); }
}
/** The server could not be started or reached, or dropped the call. */
export class Unavailable extends CallError {
  constructor(detail) { super('unavailable', detail); }
}
/** The server did not answer within the host's per-call timeout. */
export class Timeout extends CallError {
  constructor() { super('timed out'); }
}
/** The server answered with a protocol error or an invalid reply. */
export class ProtocolError extends CallError {
  constructor(detail) { super('protocol error', detail); }
}

/** Throw it to fail the run with just its message (no stack): the answer
 * for failures the agent expects, like a missing tool. */
export class AgentError extends Error {
  constructor(message) {
    super(message);
    this.name = 'AgentError';
  }
}

/** An MCP CallToolResult, parsed. */
export class ToolResult {
  constructor(reply) {
    this.content = reply.content ?? [];
    this.structured = reply.structuredContent;
    this.isError = Boolean(reply.isError);
  }

  /** The text blocks of `content`, joined by newlines: what most tools
   * answer with. */
  get text() {
    return this.content
      .filter((block) => block.type === 'text')
      .map((block) => block.text ?? '')
      .join('\n');
  }
}

const ERRORS = {
  denied: Denied,
  'not-found': NotFound,
  'invalid-arguments': InvalidArguments,
  unavailable: Unavailable,
  timeout: Timeout,
  'protocol-error': ProtocolError,
};

function toCallError(raw) {
  const Kind = ERRORS[raw?.tag];
  return Kind ? new Kind(raw.val) : new CallError('call error', String(raw?.tag ?? raw));
}

function encode(args) {
  if (args === undefined || args === null) return '';
  if (typeof args !== 'object' || Array.isArray(args)) {
    throw new InvalidArguments('arguments must be an object');
  }
  return Object.keys(args).length === 0 ? '' : JSON.stringify(args);
}

/** Calls `tool` on `server` with `args` (an object of JSON values) and
 * returns its parsed result. Throws a CallError subclass when the host
 * returns none. */
export function callTool(server, tool, args) {
  let text;
  try {
    text = mcp.callTool(server, tool, encode(args));
  } catch (error) {
    // The host's refusals carry a `call-error` payload; anything else
    // (out of memory, say) is the runtime's and goes up as it is.
    if (error?.payload === undefined) throw error;
    throw toCallError(error.payload);
  }
  return new ToolResult(JSON.parse(text));
}

/** Makes the calls at once on the host's shared sessions (at most the
 * plugin's `max_parallel_calls` in flight), as an LLM's parallel tool calls
 * ask. Results come back in order; a call the host could not make is its
 * CallError in place, not thrown, so one failure does not hide the others. */
export function callTools(calls) {
  const raw = mcp.callTools(
    calls.map((c) => ({ server: c.server, tool: c.tool, arguments: encode(c.arguments) })),
  );
  return raw.map((r) =>
    r.tag === 'ok' ? new ToolResult(JSON.parse(r.val)) : toCallError(r.val),
  );
}

/** Every tool this agent may call, answered from the host's cache (no
 * server round trip). */
export function listTools() {
  return mcp.listTools().map((t) => {
    let inputSchema = {};
    try {
      inputSchema = t.inputSchema ? JSON.parse(t.inputSchema) : {};
    } catch {
      // A server's unparsable schema is no reason to hide its tool.
    }
    return { server: t.server, name: t.name, description: t.description, inputSchema };
  });
}

/** Makes `run` the agent's entry point: export its result as `run`. `run`
 * gets the input text and returns the answer: a string as is, anything
 * else as JSON. Throwing AgentError or a CallError fails the run with its
 * message; anything else fails it with the stack — it never traps the
 * sandbox. */
export function agent(run) {
  return (input) => {
    let answer;
    try {
      answer = run(input);
    } catch (error) {
      if (error instanceof AgentError || error instanceof CallError) throw error.message;
      throw error instanceof Error
        ? `${error.name}: ${error.message}\n${error.stack ?? ''}`.trimEnd()
        : String(error);
    }
    if (typeof answer === 'string') return answer;
    if (answer && typeof answer.then === 'function') {
      throw 'the agent returned a Promise: weir agents are synchronous (tool calls block)';
    }
    const json = JSON.stringify(answer);
    if (json === undefined) throw `the agent's answer is not text or JSON: ${String(answer)}`;
    return json;
  };
}
