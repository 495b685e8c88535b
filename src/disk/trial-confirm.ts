// The trial boot's confirmation, installed into the deployed OS after a deploy with
// bootOrder "trial": a oneshot systemd unit that, once the OS reaches multi-user (and the
// network is online), POSTs to the booty server's /api/machines/<mac>/trial with the machine's
// agent credential, then removes its credential and its enablement link, so it runs once and the
// credential does not stay in the deployed system. It uses curl, else GNU wget, else bash's
// /dev/tcp (plain http only): a minimal Debian has bash but neither of the others.
// Pure rendering (trialConfirmFiles) and writing into a mounted root (installTrialConfirm).
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../util/log.ts';
import type { FileWrite } from './post-deploy-render.ts';
import { writeInRoot } from './post-deploy.ts';
import { resolveInRoot } from './root-path.ts';

export const CONFIRM_UNIT = 'booty-trial-confirm.service';
export const CONFIRM_UNIT_PATH = `/etc/systemd/system/${CONFIRM_UNIT}`;
export const CONFIRM_WANTS_LINK = `/etc/systemd/system/multi-user.target.wants/${CONFIRM_UNIT}`;
export const CONFIRM_ENV_PATH = '/etc/booty/trial-confirm.env';
export const CONFIRM_SCRIPT_PATH = '/usr/local/lib/booty/trial-confirm';

export interface TrialConfirmSettings {
  /** the server's base URL as the agent reached it (MYURL) */
  serverUrl: string;
  /** aa-bb-cc-dd-ee-ff */
  mac: string;
  /** the machine's agent credential (booty.token=) */
  credential: string;
  /** how long the unit keeps trying, seconds (the action's confirmWithin) */
  confirmWithin: number;
}

/** A value safe between single quotes in sh (the credential and URL never hold one; refuse otherwise). */
function shWord(name: string, v: string): string {
  if (!/^[A-Za-z0-9._~:/?=,+@%\-[\]]+$/.test(v)) throw new Error(`trial confirm: ${name} ${JSON.stringify(v.slice(0, 60))} holds characters the unit cannot carry`);
  return `'${v}'`;
}

const UNIT = `# written by booty at deploy time (bootOrder "trial"): tells the booty server this boot of the
# deployed OS reached multi-user. Runs once: on success it removes its credential and its link
# in multi-user.target.wants.
[Unit]
Description=booty: confirm this trial boot to the booty server
Wants=network-online.target
After=network-online.target
ConditionPathExists=${CONFIRM_ENV_PATH}

[Service]
Type=oneshot
ExecStart=/bin/sh ${CONFIRM_SCRIPT_PATH}
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
`;

const SCRIPT = `#!/bin/sh
# written by booty at deploy time: confirms this trial boot to the booty server (README "Trial
# boot"), retrying until BOOTY_CONFIRM_WITHIN seconds have passed, then forgets the credential.
set -u
# the paths can be moved for a test run; the unit uses the defaults
env_file=\${BOOTY_CONFIRM_ENV:-${CONFIRM_ENV_PATH}}
wants_link=\${BOOTY_CONFIRM_LINK:-${CONFIRM_WANTS_LINK}}
. "$env_file"
url="$BOOTY_URL/api/machines/$BOOTY_MAC/trial"
body=$(printf '{"kernel":"%s","bootId":"%s"}' "$(uname -r)" "$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)")
resp=$(mktemp)
say() { echo "booty-trial-confirm: $*"; }

# prints the HTTP status (000: no answer); the answer's body goes to $resp
post() {
  if command -v curl >/dev/null 2>&1; then
    curl -sS -m 15 -o "$resp" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \\
      -H "Authorization: Bearer $BOOTY_TOKEN" --data "$body" "$url" 2>"$resp.err" || { cat "$resp.err"; echo 000; }
    return
  fi
  if command -v wget >/dev/null 2>&1 && wget --help 2>&1 | grep -q -- '--content-on-error'; then
    wget -q -O "$resp" -T 15 -t 1 --content-on-error --header 'Content-Type: application/json' \\
      --header "Authorization: Bearer $BOOTY_TOKEN" --post-data "$body" "$url"
    case $? in 0) echo 200 ;; 8) echo 409 ;; *) echo 000 ;; esac
    return
  fi
  case "$url" in
    http://*) ;;
    *) say "$url needs curl or wget (https) in this OS; cannot confirm"; echo 999; return ;;
  esac
  hostport=\${url#http://}; hostport=\${hostport%%/*}; path=/\${url#http://*/}
  host=\${hostport%:*}; port=\${hostport##*:}; [ "$port" = "$hostport" ] && port=80
  bash -c '
    exec 3<>"/dev/tcp/$1/$2" || { echo 000; exit; }
    printf "POST %s HTTP/1.0\\r\\nHost: %s\\r\\nContent-Type: application/json\\r\\nAuthorization: Bearer %s\\r\\nContent-Length: %s\\r\\n\\r\\n%s" "$3" "$4" "$5" "\${#6}" "$6" >&3
    IFS=" " read -r _ code _ <&3 || code=000
    while IFS= read -r l <&3; do [ \${#l} -le 1 ] && break; done
    cat <&3 >"$7"
    echo "\${code:-000}"' _ "$host" "$port" "$path" "$hostport" "$BOOTY_TOKEN" "$body" "$resp" 2>&1
}

forget() { rm -f "$env_file" "$wants_link" "$resp" "$resp.err"; }

end=$(( $(date +%s) + BOOTY_CONFIRM_WITHIN ))
while :; do
  code=$(post | tail -n 1)
  case "$code" in
    200) say "trial boot confirmed to $BOOTY_URL: $(cat "$resp")"; forget; exit 0 ;;
    4??) say "the server refused the confirmation ($code): $(cat "$resp")"; forget; exit 1 ;;
    999) forget; exit 1 ;;
  esac
  if [ "$(date +%s)" -ge "$end" ]; then
    say "no answer from $url within $BOOTY_CONFIRM_WITHIN s (last status $code); the server will report this trial as failed"
    forget; exit 1
  fi
  sleep 5
done
`;

/** The files the confirmation needs, and the link that enables it. */
export function trialConfirmFiles(s: TrialConfirmSettings): { writes: FileWrite[]; links: { path: string; target: string }[] } {
  const env = [
    '# written by booty at deploy time; removed by booty-trial-confirm once it has confirmed',
    `BOOTY_URL=${shWord('server URL', s.serverUrl.replace(/\/+$/, ''))}`,
    `BOOTY_MAC=${shWord('MAC', s.mac)}`,
    `BOOTY_TOKEN=${shWord('credential', s.credential)}`,
    `BOOTY_CONFIRM_WITHIN=${Math.max(1, Math.floor(s.confirmWithin))}`,
    '',
  ].join('\n');
  return {
    writes: [
      { path: CONFIRM_ENV_PATH, content: env, mode: 0o600 },
      { path: CONFIRM_SCRIPT_PATH, content: SCRIPT, mode: 0o755 },
      { path: CONFIRM_UNIT_PATH, content: UNIT, mode: 0o644 },
    ],
    links: [{ path: CONFIRM_WANTS_LINK, target: CONFIRM_UNIT_PATH }],
  };
}

/** Writes the confirmation into a deployed root mounted at `root`. */
export function installTrialConfirm(root: string, s: TrialConfirmSettings, log: Logger): void {
  const { writes, links } = trialConfirmFiles(s);
  for (const w of writes) writeInRoot(root, w);
  for (const l of links) {
    const parent = resolveInRoot(root, path.posix.dirname(l.path));
    fs.mkdirSync(parent, { recursive: true, mode: 0o755 });
    const at = path.join(parent, path.posix.basename(l.path));
    fs.rmSync(at, { force: true });
    fs.symlinkSync(l.target, at);
  }
  log.info(`trial boot: installed ${CONFIRM_UNIT} (enabled; confirms to ${s.serverUrl} within ${s.confirmWithin} s, then removes its credential ${CONFIRM_ENV_PATH})`);
}
