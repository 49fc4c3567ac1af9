/** A progress bar on a terminal for long transfers; silent when output is not a TTY. */
import { SingleBar, Presets } from 'cli-progress';
import type { CliIo } from './io.ts';

export interface Progress {
  add(bytes: number): void;
  stop(): void;
}

const worthABar = 16 * 1024 * 1024;

export function progress(stream: CliIo['stderr'], label: string, total: number): Progress {
  if (!stream.isTTY || total < worthABar) return { add: () => {}, stop: () => {} };
  const bar = new SingleBar(
    {
      format: `${label} [{bar}] {percentage}% | {value}/{total} MiB | {eta_formatted}`,
      stream,
      hideCursor: true,
      clearOnComplete: true,
    },
    Presets.shades_classic,
  );
  const mib = (n: number) => Math.round((n / 1048576) * 10) / 10;
  let done = 0;
  bar.start(mib(total), 0);
  return {
    add: (bytes) => {
      done += bytes;
      bar.update(mib(done));
    },
    stop: () => bar.stop(),
  };
}
