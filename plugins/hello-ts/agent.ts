// `hello-ts`: greets through an MCP `echo` tool — `hello`, in TypeScript.
//
// Input: a name (empty means "world"). It finds a server offering `echo`
// (weir's built-in one first), sends the greeting through it and returns
// what came back.
import { AgentError, agent, callTool, listTools } from 'weir-guest';

export const run = agent((input: string): string => {
  const name = input.trim() || 'world';
  const servers = listTools()
    .filter((t) => t.name === 'echo')
    .map((t) => t.server)
    .sort((a, b) => Number(a !== 'builtin') - Number(b !== 'builtin'));
  if (servers.length === 0) throw new AgentError('no server offers an `echo` tool');
  const reply = callTool(servers[0], 'echo', { message: `Hello, ${name}!` });
  if (reply.isError) throw new AgentError(`echo failed: ${reply.text}`);
  return reply.text;
});
