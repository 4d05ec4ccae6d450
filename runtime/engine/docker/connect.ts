import { readFileSync } from 'node:fs';
import path from 'node:path';
import Docker from 'dockerode';

/**
 * Finds the Docker endpoint, in order: `DOCKER_HOST` (unix://, tcp://, ssh://user@host[:port]),
 * then the local socket `/var/run/docker.sock`. `DOCKER_TLS_VERIFY`/`DOCKER_CERT_PATH` apply to
 * tcp as with the Docker CLI; ssh uses the agent in `SSH_AUTH_SOCK` (docker-modem over ssh2).
 */
export interface Endpoint {
  options: Docker.DockerOptions;
  /** Human-readable, secret-free description. */
  display: string;
  /** The engine shares this host's kernel and /proc (local unix socket). */
  local: boolean;
}

export function resolveEndpoint(env: NodeJS.ProcessEnv = process.env): Endpoint {
  const raw = env.DOCKER_HOST?.trim();
  if (!raw) return { options: { socketPath: '/var/run/docker.sock' }, display: 'unix:///var/run/docker.sock', local: true };
  let url: URL;
  try {
    url = new URL(raw);
  } catch (cause) {
    throw new Error(`DOCKER_HOST=${raw} is not a URL (expected unix://, tcp:// or ssh://)`, { cause });
  }
  switch (url.protocol) {
    case 'unix:':
      return { options: { socketPath: url.pathname }, display: `unix://${url.pathname}`, local: true };
    case 'tcp:':
    case 'http:':
    case 'https:': {
      const tls = url.protocol === 'https:' || (env.DOCKER_TLS_VERIFY ?? '') !== '';
      const certDir = env.DOCKER_CERT_PATH;
      const options: Docker.DockerOptions = {
        host: url.hostname,
        port: Number(url.port || (tls ? 2376 : 2375)),
        protocol: tls ? 'https' : 'http',
      };
      if (tls && certDir) {
        options.ca = readFileSync(path.join(certDir, 'ca.pem'));
        options.cert = readFileSync(path.join(certDir, 'cert.pem'));
        options.key = readFileSync(path.join(certDir, 'key.pem'));
      }
      return { options, display: `${options.protocol}://${url.hostname}:${options.port}`, local: false };
    }
    case 'ssh:': {
      const options: Docker.DockerOptions = {
        protocol: 'ssh',
        host: url.hostname,
        port: Number(url.port || 22),
        username: url.username || undefined,
        sshOptions: { agent: env.SSH_AUTH_SOCK },
      };
      return { options, display: `ssh://${url.username ? `${url.username}@` : ''}${url.hostname}:${options.port}`, local: false };
    }
    default:
      throw new Error(`DOCKER_HOST=${raw}: unsupported scheme ${url.protocol} (expected unix://, tcp:// or ssh://)`);
  }
}
