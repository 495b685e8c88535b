// `booty tokens add|list|revoke [NAME] --data DIR`: named operator tokens of a booty server,
// kept hashed in DIR/booty.db (or, with --database postgres://..., in the replicas' PostgreSQL). Works on the data directory (on the server's host), so the
// first token can be made before anyone can authenticate; a running server sees the change at
// its next request. The token is printed once, by `add`.

import { join, resolve } from 'node:path';
import { existsSync } from 'node:fs';
import { OperatorTokens } from '../server/trust/operator-tokens.ts';
import { openStateStore } from '../server/store/open-store.ts';
import { parseArgsOrExplain } from './args.ts';
import { BootyError } from '../util/errors.ts';

const HELP = `usage: booty tokens add NAME --data DIR     make an operator token (printed once)
       booty tokens list --data DIR         names and creation times (never the tokens)
       booty tokens revoke NAME --data DIR  the token stops working at once (also dashboard logins made with it)

Operator tokens authorize changes, uploads, logs and the dashboard on booty server
("Authorization: Bearer <token>", booty machines --token, the dashboard's login).
DIR is the server's --data directory; servers on PostgreSQL: --database postgres://... as given
to booty server, instead of --data. See README "Security model".
`;

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgsOrExplain({
    args: argv, allowPositionals: true, strict: true,
    options: { data: { type: 'string' }, database: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  }, 'tokens');
  if (values.help === true) { process.stdout.write(HELP); return 0; }
  const [verb, name, ...extra] = positionals;
  const bad = (message: string) => new BootyError({ stage: 'config', code: 'BAD_ARGUMENT', message, hint: 'see booty tokens --help' });
  if (values.data === undefined && values.database === undefined) throw bad('--data DIR (the server\'s data directory) is required (or --database postgres://... for servers on PostgreSQL)');
  if (extra.length > 0) throw bad(`unexpected ${JSON.stringify(extra[0])}`);
  if (values.database === undefined) {
    const dbFile = join(resolve(values.data!), 'booty.db');
    // a typo in --data must not make an empty database nobody serves
    if (!existsSync(dbFile)) throw bad(`${dbFile} does not exist: start "booty server --data ${values.data}" once, or check --data`);
  }
  let store;
  try { store = await openStateStore({ dataDir: resolve(values.data ?? '.'), database: values.database }); } catch (e) { throw bad((e as Error).message); }
  const where = values.database === undefined ? `--data ${values.data}` : '--database URL';
  try {
    const tokens = new OperatorTokens(store);
    switch (verb) {
      case 'add': {
        if (name === undefined) throw bad('booty tokens add needs a NAME (who or what uses the token, e.g. alice or ci)');
        let token;
        try { token = await tokens.add(name); } catch (e) { throw bad((e as Error).message); }
        process.stdout.write(`${token}\n`);
        process.stderr.write(`booty tokens: operator token "${name}" made; it is shown only now. Use it as "Authorization: Bearer <token>", BOOTY_TOKEN=<token> booty machines ..., or the dashboard login\n`);
        return 0;
      }
      case 'list': {
        const list = await tokens.list();
        if (values.json === true) process.stdout.write(JSON.stringify(list, null, 2) + '\n');
        else for (const t of list) process.stdout.write(`${t.name.padEnd(24)} ${t.created}\n`);
        return 0;
      }
      case 'revoke': {
        if (name === undefined) throw bad('booty tokens revoke needs the NAME of the token');
        if (!await tokens.revoke(name)) throw bad(`no token named "${name}" (booty tokens list ${where})`);
        process.stderr.write(`booty tokens: "${name}" revoked\n`);
        return 0;
      }
      default:
        throw bad(verb === undefined ? 'say add, list or revoke' : `unknown verb ${JSON.stringify(verb)}: add, list or revoke`);
    }
  } finally { await store.close(); }
}
