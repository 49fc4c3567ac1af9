/**
 * Functions of Node's built-in modules taken from the module objects, not imported as ES
 * modules, where the ES import costs memory in every process. An ES import of a built-in builds
 * its namespace from every export, running every getter among them: node:http's WebSocket,
 * CloseEvent and MessageEvent load Node's fetch implementation, undici (~11 MB: 61 against 50 MB
 * for a bare `node`), and node:util's parseArgs and diff their modules (~2.7 MB), for nothing
 * wharf uses. Types still come from `import type ... from 'node:http'`.
 */
export const { createServer, request } = process.getBuiltinModule('node:http');
export const { promisify } = process.getBuiltinModule('node:util');
