// ws requires this inside try/catch and falls back to its JavaScript implementation when it throws.
throw new Error('booty: bufferutil is not built in (stubbed: scripts/stubs/no-bufferutil)');
