/** Builds the WHERE clause of a filtered listing: conditions whose value is undefined are skipped. */
export class Where {
  readonly clauses: string[] = [];
  readonly args: (string | number)[] = [];

  /** Adds `clause` (with one `?` per value) unless the first value is undefined. */
  add(clause: string, ...values: (string | number | undefined)[]): this {
    if (values.length && values[0] === undefined) return this;
    this.clauses.push(clause);
    for (const v of values) if (v !== undefined) this.args.push(v);
    return this;
  }

  /** `col IN (...)` over `values`; an empty list matches nothing; undefined is skipped. */
  anyOf(col: string, values: readonly string[] | undefined): this {
    if (!values) return this;
    this.clauses.push(values.length ? `${col} IN (${values.map(() => '?').join(',')})` : '0');
    this.args.push(...values);
    return this;
  }

  /** ` WHERE a AND b` (with its leading space), or '' when there is no condition. */
  get sql(): string {
    return this.clauses.length ? ` WHERE ${this.clauses.join(' AND ')}` : '';
  }
}
