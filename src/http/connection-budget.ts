/**
 * How many connections a serving process holds open, by client address and in all. One budget is
 * shared by every listener of the process (its HTTPS port and its plain HTTP one), so that
 * `max_connections` and `max_connections_per_address` bound the process, which is what runs out
 * of file descriptors, and a client cannot double its share by using both ports.
 */
export class ConnectionBudget {
  /** Connections one address may hold at once; 0: no bound. */
  readonly perAddress: number;
  /** Connections the process holds at once, from every address; 0: no bound. */
  readonly total: number;
  private readonly byAddress = new Map<string, number>();
  private open = 0;

  constructor(limits: { perAddress: number; total: number }) {
    this.perAddress = limits.perAddress;
    this.total = limits.total;
  }

  /** Takes a place for a connection from `address`; false, and nothing taken, when there is none. */
  take(address: string): boolean {
    const held = this.byAddress.get(address) ?? 0;
    if ((this.perAddress > 0 && held >= this.perAddress) || (this.total > 0 && this.open >= this.total)) return false;
    this.byAddress.set(address, held + 1);
    this.open++;
    return true;
  }

  /** Gives back the place of a connection from `address` that `take` admitted. */
  give(address: string): void {
    const left = (this.byAddress.get(address) ?? 1) - 1;
    if (left > 0) this.byAddress.set(address, left);
    else this.byAddress.delete(address);
    this.open--;
  }
}
