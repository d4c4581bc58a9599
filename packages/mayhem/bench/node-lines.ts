/**
 * `--node 22,24,26` for the benches: the Node.js lines to measure side by side in one sitting. Each major is
 * resolved through the repository's `scripts/with-node.sh` (the line from the npm registry, better-sqlite3
 * built for its ABI), so a bench alternates lines round by round exactly as it alternates builds.
 */
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** One Node.js binary to run cases under. */
export interface NodeLine {
  /** `node 26.12.1`, or `this node` when no line was asked for. */
  readonly label: string;
  readonly bin: string;
}

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');

/** The running node only (no `--node` flag). */
export const OWN_LINE: NodeLine = { label: `node ${process.versions.node}`, bin: process.execPath };

/** `22,24,26` → the binaries, fetched and prepared on first use (progress on stderr). */
export function resolveNodeLines(spec: string | undefined): NodeLine[] {
  if (spec === undefined || spec === '') return [OWN_LINE];
  return spec.split(',').map((major) => {
    if (!/^\d+$/.test(major)) throw new Error(`--node takes majors such as 22,24,26 (got ${JSON.stringify(major)})`);
    const out = execFileSync(
      join(repo, 'scripts', 'with-node.sh'),
      [major, 'node', '-p', 'process.execPath + " " + process.versions.node'],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
    ).trim();
    const [bin, version] = out.split(' ');
    if (bin === undefined || version === undefined) throw new Error(`could not resolve Node ${major}: ${out}`);
    return { label: `node ${version}`, bin };
  });
}
