// ws requires this inside try/catch and falls back to its JavaScript implementation when it throws.
throw new Error('booty: utf-8-validate is not built in (stubbed: scripts/stubs/no-utf-8-validate)');
