/** node:util's functions from its module object: why, in http.ts. */
export const { promisify } = process.getBuiltinModule('node:util');
