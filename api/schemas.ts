import { Type, type TSchema } from 'typebox';

/** The Director Protocol's success envelope around a route's data schema (for validation-free serialization and OpenAPI). */
export const Envelope = <T extends TSchema>(data: T) =>
  Type.Object({
    success: Type.Literal(true),
    data,
    metadata: Type.Object({ timestamp: Type.String(), requestId: Type.String(), version: Type.String() }, { additionalProperties: true }),
  });

export const ErrorEnvelope = Type.Object(
  {
    success: Type.Literal(false),
    error: Type.Object({ code: Type.String(), message: Type.String(), details: Type.Record(Type.String(), Type.Unknown()) }),
    metadata: Type.Object({ timestamp: Type.String(), requestId: Type.String(), retryAfter: Type.Optional(Type.Integer()) }),
  },
  { description: 'Error in the Director Protocol envelope' },
);

/** Error responses every authenticated route may give (documented once, shared). */
export const STANDARD_ERRORS = {
  400: ErrorEnvelope,
  401: ErrorEnvelope,
  403: ErrorEnvelope,
  404: ErrorEnvelope,
  429: ErrorEnvelope,
  500: ErrorEnvelope,
  503: ErrorEnvelope,
} as const;

export const IdParams = (prefix: string) =>
  Type.Object(
    { id: Type.String({ pattern: `^${prefix}_[A-Za-z0-9_-]{16}$`, description: `A ${prefix}_ id` }) },
    { additionalProperties: false },
  );

export const PageQuery = {
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 20 })),
  offset: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000, default: 0 })),
};

export const Page = <T extends TSchema>(item: T) =>
  Type.Object({ items: Type.Array(item), total: Type.Integer(), limit: Type.Integer(), offset: Type.Integer() });

/** Free-form object (views whose shape is documented in prose). */
export const AnyObject = Type.Object({}, { additionalProperties: true });
