/** The executors `--executor` names; the settings table's `executor` kind takes this list (config/kinds.ts). */
export const EXECUTOR_KINDS = ['mock', 'command', 'http', 'docker'] as const;
export type ExecutorKind = (typeof EXECUTOR_KINDS)[number];
