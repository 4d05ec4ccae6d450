/**
 * What the OpenAPI document says about request bodies that may be left out. @fastify/swagger marks
 * every route body `required` (Fastify refuses a missing body against a body schema); routes
 * declared with `config.optionalBody` take none as an empty one, and the document says so with
 * `requestBody.required: false`, so generated clients (the SDK's types) let callers omit it.
 */

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The document's path for a Fastify route URL: `/v1/approvals/:id/approve` -> `/v1/approvals/{id}/approve`. */
export const openapiPath = (url: string): string => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

/** The routes with an optional body, as `METHOD url` pairs, gathered when routes are declared. */
export class OptionalBodies {
  readonly #ops = new Set<string>();

  add(methods: string | readonly string[], url: string): void {
    for (const m of ([] as string[]).concat(methods)) this.#ops.add(`${m.toLowerCase()} ${openapiPath(url)}`);
  }

  /** Marks those routes' request bodies optional in `doc` (in place); returns it. */
  apply<D>(doc: D): D {
    const paths = isObj(doc) && isObj(doc.paths) ? doc.paths : {};
    for (const key of this.#ops) {
      const at = key.indexOf(' ');
      const op = (paths[key.slice(at + 1)] as Json | undefined)?.[key.slice(0, at)];
      if (isObj(op) && isObj(op.requestBody)) op.requestBody.required = false;
    }
    return doc;
  }
}
