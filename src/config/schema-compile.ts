// A validator for one of schema.ts's schemas, compiled by ajv when first asked for. This is the
// sources' way; the bundle replaces this module with the validators ajv generated from the same
// schemas at build time (src/build/schema-standalone.ts, scripts/bundle.mjs), which export the
// same compileSchema: the agent in the initramfs then neither loads ajv nor compiles a schema.
import AjvModule from 'ajv';
import { schemaFormats } from './formats.ts';

const Ajv = AjvModule.default;

/** ajv as the schemas need it; `extra` adds the options the build-time generator needs. */
export function makeAjv(extra: ConstructorParameters<typeof Ajv>[0] = {}): InstanceType<typeof Ajv> {
  const ajv = new Ajv({ allErrors: false, verbose: true, strict: true, strictTypes: false, ...extra });
  for (const [name, check] of Object.entries(schemaFormats)) ajv.addFormat(name, check);
  return ajv;
}

export type Validator = ReturnType<InstanceType<typeof Ajv>['compile']>;

let ajv: InstanceType<typeof Ajv> | undefined;

export function compileSchema(_name: string, schema: object): Validator {
  return (ajv ??= makeAjv()).compile(schema);
}
