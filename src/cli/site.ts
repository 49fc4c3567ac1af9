/** `wharf site ...`: the mirrors this origin sends downloads to, by the client's region (GeoIP). */
import type { Command } from 'commander';
import { putSite } from '../steering/sites.ts';
import { checkFormat, collect, render } from './output.ts';
import { withStore, type CliContext } from './context.ts';

export function siteCommands(site: Command, cli: CliContext) {
  site
    .command('add')
    .description('Send artifact downloads from these regions to a mirror (checked before it is used); also redefines a site')
    .argument('<name>')
    .argument('<url>', 'where the site serves this origin\'s paths (http:// or https://)')
    .option('--country <code>', 'ISO 3166 country code it serves (repeatable)', collect, [])
    .option('--continent <code>', 'continent code it serves when no site covers the country (repeatable)', collect, [])
    .option('--weight <n>', 'its share among sites serving the same region', '1')
    .action(async (name: string, url: string, opts: { country: string[]; continent: string[]; weight: string }) => {
      await withStore(cli, (store) => putSite(store, { name, url, countries: opts.country, continents: opts.continent, weight: Number(opts.weight) }));
    });

  site
    .command('list')
    .alias('ls')
    .option('-f, --format <format>', 'table, csv, json or yaml', 'table')
    .action(async (opts: { format: string }) => {
      const format = checkFormat(opts.format);
      const sites = await withStore(cli, (store) => store.meta.listSites());
      const state = (ok: boolean | undefined) => (ok === undefined ? 'UNCHECKED' : ok ? 'OK' : 'FAILING');
      const rows = sites.map((s) => [
        s.name,
        s.url,
        [...s.countries, ...s.continents.map((c) => `${c} (continent)`)].join('\n'),
        String(s.weight),
        state(s.health?.http),
        state(s.health?.https),
        s.health?.held ? String(s.health.held.length) : '',
        s.health?.checkedAt ?? 'never',
        s.health?.error ?? '',
      ]);
      cli.io.stdout.write(await render(format, ['NAME', 'URL', 'REGIONS', 'WEIGHT', 'HTTP', 'HTTPS', 'FILES HELD', 'LAST CHECK', 'LAST ERROR'], rows, sites));
    });

  site
    .command('remove')
    .alias('rm')
    .argument('<name>')
    .action(async (name: string) => withStore(cli, (store) => store.meta.removeSite(name)));
}
