/** Client addresses as wharf compares them: bare IPs, and lists of networks (CIDRs). */
import { BlockList, isIP } from 'node:net';

/** An address as a bare IP: IPv4-mapped IPv6 unwrapped, anything that is not an IP dropped. */
export function bareAddress(address: string | undefined): string | undefined {
  if (!address) return undefined;
  const bare = address.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');
  return isIP(bare) ? bare : undefined;
}

/**
 * An entry of X-Forwarded-For as a bare IP: a plain address, or one with a port as some proxies
 * write it (`192.0.2.1:4711`, `[2001:db8::1]:4711`); undefined for anything else (`unknown`, a
 * name, junk), which the caller must not skip over.
 */
export function forwardedAddress(entry: string): string | undefined {
  const trimmed = entry.trim();
  const bracketed = /^\[([^\]]*)\](?::\d{1,5})?$/.exec(trimmed);
  if (bracketed) return isIP(bracketed[1]!) === 6 ? bareAddress(bracketed[1]) : undefined;
  const v4WithPort = /^(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}$/.exec(trimmed);
  return bareAddress(v4WithPort ? v4WithPort[1] : trimmed);
}

/**
 * Who a request comes from: the connection's address (`peer`), or, when it comes from a trusted
 * proxy, the nearest address in X-Forwarded-For that is not itself a trusted proxy. An entry that
 * is no address (`unknown`, junk) ends the walk with no client: entries left of it were not
 * written by a proxy we trust to have checked them, so believing one would let any client say
 * who it is.
 */
export function clientAddress(peer: string | undefined, forwardedFor: string | undefined, trusted: AddressList): string | undefined {
  const bare = bareAddress(peer);
  if (!bare || !forwardedFor?.trim() || !trusted.has(bare)) return bare;
  const chain = forwardedFor.split(',');
  let address: string | undefined;
  for (let i = chain.length - 1; i >= 0; i--) {
    address = forwardedAddress(chain[i]!);
    if (address === undefined || !trusted.has(address)) return address;
  }
  // Every hop a trusted proxy: the farthest one is the client.
  return address;
}

/** Networks given as CIDRs (a bare address is a network of one). */
export class AddressList {
  private readonly list = new BlockList();

  constructor(cidrs: Iterable<string>) {
    for (const cidr of cidrs) {
      const [address, bits] = cidr.split('/');
      const family = isIP(address!) === 6 ? 'ipv6' : 'ipv4';
      this.list.addSubnet(address!, Number(bits ?? (family === 'ipv6' ? 128 : 32)), family);
    }
  }

  /** Whether `address` (a bare IP, or anything bareAddress accepts) is in one of the networks. */
  has(address: string | undefined): boolean {
    const bare = bareAddress(address);
    return bare !== undefined && this.list.check(bare, isIP(bare) === 6 ? 'ipv6' : 'ipv4');
  }
}

export const loopback = ['127.0.0.0/8', '::1/128'];
