// Types of weir's JavaScript/TypeScript guest SDK (weir.js).

/** A JSON value, as tools take and give them. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** The host did not return a tool result. A tool that ran and failed is not
 * one of these: it is a ToolResult with `isError` set. */
export class CallError extends Error {
  /** `denied`, `not found`, `invalid arguments`, `unavailable`, `timed out`
   * or `protocol error`. */
  readonly kind: string;
  /** The host's explanation (empty for a timeout). */
  readonly detail: string;
}
/** The host's policy refused the call (tool not granted, budget spent). */
export class Denied extends CallError {}
/** No such server, or the server has no such tool. */
export class NotFound extends CallError {}
/** The arguments were not a JSON object, or the server rejected them. */
export class InvalidArguments extends CallError {}
/** The server could not be started or reached, or dropped the call. */
export class Unavailable extends CallError {}
/** The server did not answer within the host's per-call timeout. */
export class Timeout extends CallError {}
/** The server answered with a protocol error or an invalid reply. */
export class ProtocolError extends CallError {}

/** Throw it to fail the run with just its message (no stack). */
export class AgentError extends Error {
  constructor(message: string);
}

/** One block of a tool result's content (text, image, resource, ...). */
export interface ContentBlock {
  type: string;
  text?: string;
  [key: string]: Json | undefined;
}

/** An MCP CallToolResult, parsed. */
export class ToolResult {
  readonly content: ContentBlock[];
  readonly structured: Json | undefined;
  readonly isError: boolean;
  /** The text blocks of `content`, joined by newlines. */
  readonly text: string;
}

/** A tool the agent may call, from the host's cached tool lists. */
export interface Tool {
  server: string;
  name: string;
  description: string | undefined;
  inputSchema: { [key: string]: Json };
}

/** One call of a `callTools` batch. */
export interface Call {
  server: string;
  tool: string;
  arguments?: { [key: string]: Json };
}

/** Calls `tool` on `server` and returns its parsed result; throws a
 * CallError subclass when the host returns none. */
export function callTool(
  server: string,
  tool: string,
  args?: { [key: string]: Json },
): ToolResult;

/** Makes the calls at once on the host's shared sessions; each result is
 * in place, a call the host could not make as its CallError (not thrown). */
export function callTools(calls: Call[]): (ToolResult | CallError)[];

/** Every tool this agent may call, from the host's cache. */
export function listTools(): Tool[];

/** Makes `run` the agent's entry point: `export const run = agent(...)`.
 * A string answer is returned as is, anything else as JSON. */
export function agent(run: (input: string) => string | Json): (input: string) => string;
