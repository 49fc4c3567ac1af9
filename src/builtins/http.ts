/**
 * Functions of Node's built-in modules taken from the module objects, not imported as ES
 * modules, where the ES import costs memory in every process. An ES import of a built-in builds
 * its namespace from every export, running every getter among them: node:http's WebSocket,
 * CloseEvent and MessageEvent load Node's fetch implementation, undici (~11 MB: 61 against 50 MB
 * for a bare `node`), and node:util's parseArgs and diff their modules (~2.7 MB, util.ts), for
 * nothing wharf uses. One module per built-in, so that a command loads only the one it needs.
 * Types still come from `import type ... from 'node:http'`.
 */
export const { createServer, request } = process.getBuiltinModule('node:http');
