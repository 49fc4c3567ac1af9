/** Client addresses as wharf compares them: bare IPs, and lists of networks (CIDRs). */
import { BlockList, isIP } from 'node:net';

/** An address as a bare IP: IPv4-mapped IPv6 unwrapped, anything that is not an IP dropped. */
export function bareAddress(address: string | undefined): string | undefined {
  if (!address) return undefined;
  const bare = address.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');
  return isIP(bare) ? bare : undefined;
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
