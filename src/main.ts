/** Entry point of the `wharf` command. */
import { enableCompileCache } from 'node:module';

// V8 keeps the code it compiled for wharf's modules in a cache on disk (in the OS temp dir,
// keyed by each file's contents), which saves part of every later start.
enableCompileCache();

// Imported only now, so that the cache covers the command line's modules too.
const { runCli } = await import('./cli/main.ts');
process.exitCode = await runCli(process.argv);
