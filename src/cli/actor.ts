/** Who a CLI command acts as, for the records that say who did what (channel history). */
import { hostname, userInfo } from 'node:os';

export function cliActor(): string {
  let user: string;
  try {
    user = userInfo().username;
  } catch {
    // A uid with no passwd entry (a container run with --user 1234).
    user = String(process.getuid?.() ?? 'unknown');
  }
  return `${user}@${hostname()}`;
}
