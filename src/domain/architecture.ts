/**
 * Architecture names as LXD and Incus understand them (shared/osarch/architectures.go in both).
 * The REST API and metadata.yaml use the canonical kernel name; simplestreams `arch` uses the
 * distribution name, which every client version maps back through these same tables.
 */
interface ArchitectureEntry {
  canonical: string;
  /** The name distributions (and images.linuxcontainers.org) use; first alias LXD 5.0 knows. */
  distro: string;
  aliases: readonly string[];
}

const table: readonly ArchitectureEntry[] = [
  { canonical: 'i686', distro: 'i386', aliases: ['i386', 'i586', '386', 'x86', 'generic_32'] },
  {
    canonical: 'x86_64',
    distro: 'amd64',
    aliases: ['amd64', 'generic_64', 'amd64v3', 'x86_64_v1', 'x86_64_v2', 'x86_64_v3', 'x86_64_v4'],
  },
  { canonical: 'armv6l', distro: 'armel', aliases: ['armel', 'arm'] },
  { canonical: 'armv7l', distro: 'armhf', aliases: ['armhf', 'armhfp', 'armv7a_hardfp', 'armv7', 'armv7a_vfpv3_hardfp'] },
  { canonical: 'armv8l', distro: 'armv8l', aliases: [] },
  { canonical: 'aarch64', distro: 'arm64', aliases: ['arm64', 'arm64_generic'] },
  { canonical: 'ppc', distro: 'powerpc', aliases: ['powerpc'] },
  { canonical: 'ppc64', distro: 'powerpc64', aliases: ['powerpc64'] },
  { canonical: 'ppc64le', distro: 'ppc64el', aliases: ['ppc64el'] },
  { canonical: 's390x', distro: 's390x', aliases: [] },
  { canonical: 'mips', distro: 'mipsel', aliases: ['mipsel', 'mipsle'] },
  { canonical: 'mips64', distro: 'mips64el', aliases: ['mips64el', 'mips64le'] },
  { canonical: 'riscv32', distro: 'riscv32', aliases: [] },
  { canonical: 'riscv64', distro: 'riscv64', aliases: [] },
  { canonical: 'loongarch64', distro: 'loong64', aliases: ['loong64'] },
];

const byName = new Map<string, ArchitectureEntry>();
for (const entry of table) {
  byName.set(entry.canonical, entry);
  for (const alias of entry.aliases) byName.set(alias, entry);
}

/** The canonical name for any accepted spelling, or undefined if no client would know it. */
export function canonicalArchitecture(name: string): string | undefined {
  return byName.get(name.trim().toLowerCase())?.canonical;
}

/** The distribution spelling of a canonical name (x86_64 -> amd64). */
export function distroArchitecture(canonical: string): string {
  return byName.get(canonical)?.distro ?? canonical;
}

export const knownArchitectures: readonly string[] = table.map((e) => e.canonical);

/** Architectures a host of `canonical` can also run, in the clients' preference order. */
export function personalities(canonical: string): string[] {
  switch (canonical) {
    case 'x86_64':
      return ['i686'];
    case 'aarch64':
      return ['armv8l', 'armv7l', 'armv6l'];
    case 'ppc64':
      return ['ppc'];
    case 'mips64':
      return ['mips'];
    default:
      return [];
  }
}

/** The host's own architecture, canonical. */
export function hostArchitecture(): string {
  const map: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64', arm: 'armv7l', ia32: 'i686', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64', loong64: 'loongarch64' };
  return map[process.arch] ?? process.arch;
}
