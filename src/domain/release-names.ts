/**
 * Names that mean the same release of an OS: images.linuxcontainers.org answers to both
 * `debian/bookworm` and `debian/12`, `ubuntu/noble` and `ubuntu/24.04`, while an image built by
 * distrobuilder carries one of them (the codename) as its release. The built-in table covers the
 * distributions that publish both; `release_aliases` in config.yaml replaces it per OS.
 */
import { AppError, ErrorCodes } from '../errors.ts';

/** OS (lowercase) -> release name (lowercase) -> every name of that release, itself first. */
export type ReleaseNames = ReadonlyMap<string, ReadonlyMap<string, readonly string[]>>;

/** As config.yaml spells it: OS -> codename -> the other name(s). */
export type ReleaseAliasSetting = Record<string, Record<string, string | number | (string | number)[]>>;

export const builtinReleaseAliases: ReleaseAliasSetting = {
  debian: { buster: '10', bullseye: '11', bookworm: '12', trixie: '13', forky: '14' },
  ubuntu: { focal: '20.04', jammy: '22.04', noble: '24.04', oracular: '24.10', plucky: '25.04', questing: '25.10' },
  devuan: { beowulf: '3', chimaera: '4', daedalus: '5', excalibur: '6' },
};

/** The lookup for a setting merged over the built-in table (an OS given replaces its entry). */
export function releaseNames(setting: ReleaseAliasSetting = {}): ReleaseNames {
  const merged = { ...builtinReleaseAliases, ...Object.fromEntries(Object.entries(setting).map(([os, v]) => [os.toLowerCase(), v])) };
  const byOs = new Map<string, Map<string, string[]>>();
  for (const [os, releases] of Object.entries(merged)) {
    const names = new Map<string, string[]>();
    for (const [release, others] of Object.entries(releases)) {
      const group = [release, ...(Array.isArray(others) ? others : [others])].map((n) => String(n).toLowerCase());
      for (const name of group) names.set(name, [name, ...group.filter((n) => n !== name)]);
    }
    byOs.set(os, names);
  }
  return byOs;
}

export const defaultReleaseNames: ReleaseNames = releaseNames();

/** Checks a `release_aliases` value from a config file. */
export function checkReleaseAliasSetting(value: unknown, origin: string): ReleaseAliasSetting {
  const bad = (what: string) => new AppError(ErrorCodes.config, `${origin}: ${what}`, { hint: 'e.g. release_aliases: { debian: { bookworm: "12" }, ubuntu: { noble: "24.04" } }' });
  const isMapping = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  const isName = (v: unknown) => (typeof v === 'string' && /^[^\s,/]+$/.test(v)) || (typeof v === 'number' && Number.isFinite(v));
  if (!isMapping(value)) throw bad('must map an OS to its releases');
  for (const [os, releases] of Object.entries(value)) {
    if (!isMapping(releases)) throw bad(`${os} must map a release name to its other name(s)`);
    for (const [release, others] of Object.entries(releases)) {
      const list = Array.isArray(others) ? others : [others];
      if (!isName(release) || list.length === 0 || !list.every(isName)) throw bad(`${os}.${release}: names are single words without "/" or ","`);
    }
  }
  return value as ReleaseAliasSetting;
}

/**
 * `aliases` with every alias that names the release (`debian/bookworm[/...]`) also given under
 * the release's other names (`debian/12[/...]`), after the originals.
 */
export function withReleaseNames(aliases: readonly string[], os: string, release: string, names: ReleaseNames): string[] {
  const o = os.toLowerCase();
  const r = release.toLowerCase();
  const others = (names.get(o)?.get(r) ?? []).filter((n) => n !== r);
  const out = [...aliases];
  for (const alias of aliases) {
    const [first, second, ...rest] = alias.split('/');
    if (first !== o || second !== r) continue;
    for (const other of others) out.push([first, other, ...rest].join('/'));
  }
  return [...new Set(out)];
}
