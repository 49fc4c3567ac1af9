/**
 * Waiting for what another process (a replica, a mirror, a daemon) does in its own time: `probe`
 * is asked every `everyMs` until it answers something other than undefined. A probe that throws
 * has not answered yet (a server still starting, a connection refused); on timeout the error says
 * what was awaited and the probe's last failure.
 */
export async function until<T>(what: string, probe: () => Promise<T | undefined>, ms: number, everyMs = 100): Promise<T> {
  const deadline = Date.now() + ms;
  let failure: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      failure = err;
    }
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}${failure ? ` (last: ${(failure as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
