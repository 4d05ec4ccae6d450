/**
 * Host names in network policies: syntax, the over-breadth guard and wildcard matching.
 *
 * A pattern is a DNS name (`pypi.org`) or a single leading wildcard (`*.pythonhosted.org`)
 * followed by at least two labels. `*.example.com` matches every name strictly below
 * `example.com` (any depth), not `example.com` itself. Wildcards over a top-level domain or over
 * a public suffix whose subdomains belong to unrelated owners (`*.co.uk`, `*.github.io`) are
 * refused: they would allow a large part of the internet.
 */

/**
 * Multi-label public suffixes (a small built-in excerpt of the Public Suffix List): registries'
 * second levels and hosting platforms where each subdomain is a different customer.
 */
export const PUBLIC_SUFFIXES: ReadonlySet<string> = new Set([
  // country-code second levels
  'co.uk',
  'org.uk',
  'me.uk',
  'ltd.uk',
  'plc.uk',
  'net.uk',
  'ac.uk',
  'gov.uk',
  'sch.uk',
  'nhs.uk',
  'com.au',
  'net.au',
  'org.au',
  'edu.au',
  'gov.au',
  'id.au',
  'asn.au',
  'co.nz',
  'net.nz',
  'org.nz',
  'govt.nz',
  'ac.nz',
  'co.jp',
  'ne.jp',
  'or.jp',
  'ac.jp',
  'go.jp',
  'gr.jp',
  'co.kr',
  'or.kr',
  'ne.kr',
  'go.kr',
  'com.br',
  'net.br',
  'org.br',
  'gov.br',
  'com.cn',
  'net.cn',
  'org.cn',
  'gov.cn',
  'edu.cn',
  'com.tw',
  'org.tw',
  'com.hk',
  'org.hk',
  'com.sg',
  'edu.sg',
  'com.my',
  'co.in',
  'net.in',
  'org.in',
  'gov.in',
  'ac.in',
  'co.za',
  'org.za',
  'gov.za',
  'com.mx',
  'org.mx',
  'gob.mx',
  'com.ar',
  'gob.ar',
  'com.tr',
  'gov.tr',
  'co.il',
  'org.il',
  'ac.il',
  'com.ua',
  'co.id',
  'or.id',
  'go.id',
  'com.ph',
  'com.vn',
  'co.th',
  'in.th',
  'com.pk',
  'com.eg',
  'com.sa',
  'com.pl',
  'co.at',
  'or.at',
  // hosting platforms: every subdomain is a different owner
  'github.io',
  'githubusercontent.com',
  'gitlab.io',
  'bitbucket.io',
  'pages.dev',
  'workers.dev',
  'vercel.app',
  'netlify.app',
  'herokuapp.com',
  'fly.dev',
  'onrender.com',
  'web.app',
  'firebaseapp.com',
  'appspot.com',
  'blogspot.com',
  'cloudfront.net',
  'amazonaws.com',
  's3.amazonaws.com',
  'elasticbeanstalk.com',
  'azurewebsites.net',
  'cloudapp.net',
  'blob.core.windows.net',
  'trafficmanager.net',
  'ngrok.io',
  'ngrok-free.app',
  'glitch.me',
  'repl.co',
  'readthedocs.io',
  'surge.sh',
  'now.sh',
  'azurestaticapps.net',
  'r2.dev',
]);

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * Checks a host-name pattern and returns it normalized (lowercase, one trailing dot removed),
 * or the reason it is refused.
 */
export function checkHostPattern(text: string): { host: string } | { issue: string } {
  let host = text.toLowerCase();
  if (host.endsWith('.')) host = host.slice(0, -1);
  if (host === '*' || host === '*.') return { issue: '"*" would allow every host' };
  const wildcard = host.startsWith('*.');
  const base = wildcard ? host.slice(2) : host;
  if (base.includes('*')) return { issue: `"${text}": only a single leading "*." wildcard is allowed` };
  if (host.length > 253) return { issue: `"${text}" is longer than 253 characters` };
  const labels = base.split('.');
  const bad = labels.find((l) => !LABEL.test(l));
  if (bad !== undefined) {
    return { issue: `"${text}" is not a valid host name (label "${bad}": letters, digits and inner hyphens, 1-63 characters)` };
  }
  if (/^[0-9]+$/.test(labels[labels.length - 1] ?? '')) {
    return { issue: `"${text}" is neither a valid address nor a host name (the top-level label is numeric)` };
  }
  if (labels.length < 2) {
    return wildcard
      ? { issue: `"${text}" is a wildcard over a whole top-level domain` }
      : { issue: `"${text}" is a bare top-level domain or single-label name; give a fully qualified host name` };
  }
  if (wildcard && PUBLIC_SUFFIXES.has(base)) {
    return { issue: `"${text}" is a wildcard over the public suffix "${base}", whose subdomains belong to unrelated owners` };
  }
  return { host };
}

/** Whether `pattern` (already normalized) covers the queried `name` (any case, optional trailing dot). */
export function hostMatches(pattern: string, name: string): boolean {
  let n = name.toLowerCase();
  if (n.endsWith('.')) n = n.slice(0, -1);
  if (!pattern.startsWith('*.')) return n === pattern;
  const suffix = pattern.slice(1); // ".example.com"
  return n.length > suffix.length && n.endsWith(suffix);
}
