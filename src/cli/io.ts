/**
 * What a command reads and writes: its output streams, its input and its environment. `wharf`
 * runs with the process's own; tests run commands in process with their own (runCli's `io`).
 */
export interface CliIo {
  stdout: NodeJS.WritableStream;
  /** Progress bars are drawn only when this is a terminal. */
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  /** `image edit` reads the edited image from here unless it is a terminal ($EDITOR then). */
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  /** WHARF_* settings, WHARF_DATA_DIR, VISUAL and EDITOR. */
  env: NodeJS.ProcessEnv;
}

/** The process's streams, each taken only when a command uses it (process.stdin costs start-up time). */
export function processIo(): CliIo {
  return {
    get stdout() {
      return process.stdout;
    },
    get stderr() {
      return process.stderr;
    },
    get stdin() {
      return process.stdin;
    },
    get env() {
      return process.env;
    },
  };
}
