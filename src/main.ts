/** Entry point of the `wharf` command. */
import { runCli } from './cli/main.ts';

process.exitCode = await runCli(process.argv);
