/** `wharf backup DIR`: see src/backup.ts. */
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { backupDataDir, blobListName } from '../backup.ts';
import { cliConfig, type CliContext } from './context.ts';
import { humanSize } from './output.ts';

export function backupCommand(command: Command, cli: CliContext) {
  command
    .argument('<dir>', 'a new or empty directory')
    .action(async (dir: string) => {
      const config = await cliConfig(cli);
      const dest = resolve(dir);
      const result = await backupDataDir(config, dest);
      cli.io.stdout.write(
        `Backed up ${result.files.join(', ')} to ${dest}\n` +
          `${result.blobs} blobs (${humanSize(result.bytes)}) are listed in ${blobListName}, not copied: copy ${resolve(config.dataDir, 'blobs')} as files (rsync, a snapshot), before or after.\n`,
      );
    });
}
