import { ICellModel } from '@jupyterlab/cells';

/** Tags that start a task (nb2pipe also accepts Kale's `step:`/`block:`). */
const TASK_PREFIXES = ['task:', 'step:', 'block:'];

const TASK_NAME = /^[a-z][a-z0-9_-]{0,62}$/;
// Kubernetes quantities: 2, 500m, 4Gi, 1.5.
const QUANTITY = /^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$/;
const GPU_COUNT = /^[0-9]+$/;
const K8S_NAME = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const SECRET_KEY = /^[A-Za-z0-9._-]+$/;

export function getTags(cell: ICellModel): string[] {
  const tags = cell.getMetadata('tags');
  return Array.isArray(tags) ? tags.filter(t => typeof t === 'string') : [];
}

function setTags(cell: ICellModel, tags: string[]): void {
  const unique = Array.from(new Set(tags));
  if (unique.length) {
    cell.setMetadata('tags', unique);
  } else {
    cell.deleteMetadata('tags');
  }
}

/** Makes `cell` start task `name`, replacing any task tag it had. Returns an error or null. */
export function startTask(cell: ICellModel, name: string): string | null {
  name = name.trim();
  if (!TASK_NAME.test(name)) {
    return 'a task name is a lower-case letter, then letters, digits, `-` or `_` (at most 63)';
  }
  const rest = getTags(cell).filter(
    t => !TASK_PREFIXES.some(p => t.startsWith(p))
  );
  setTags(cell, [`task:${name}`, ...rest]);
  return null;
}

/** Sets cpu / memory / gpu requests: empty values are left alone. */
export function setResources(
  cell: ICellModel,
  values: { cpu?: string; memory?: string; gpu?: string }
): string | null {
  const checks: [string, string | undefined, RegExp][] = [
    ['cpu', values.cpu?.trim(), QUANTITY],
    ['memory', values.memory?.trim(), QUANTITY],
    ['gpu', values.gpu?.trim(), GPU_COUNT]
  ];
  let tags = getTags(cell);
  let changed = false;
  for (const [key, value, re] of checks) {
    if (!value) {
      continue;
    }
    if (!re.test(value)) {
      return `\`${value}\` is not a valid ${key} quantity (e.g. ${key === 'memory' ? '4Gi' : key === 'cpu' ? '500m or 2' : '1'})`;
    }
    tags = tags.filter(t => !t.startsWith(`${key}:`)).concat(`${key}:${value}`);
    changed = true;
  }
  if (!changed) {
    return 'give a cpu, memory or gpu value';
  }
  setTags(cell, tags);
  return null;
}

/**
 * Adds `secret:NAME` (all keys) or `secret:NAME:KEY:ENV` (one key as env var ENV).
 * Only the Kubernetes Secret's name is written: never a value.
 */
export function addSecret(
  cell: ICellModel,
  name: string,
  key = '',
  env = ''
): string | null {
  name = name.trim();
  key = key.trim();
  env = env.trim();
  if (!K8S_NAME.test(name)) {
    return 'a Secret name is lower-case letters, digits, `-` and `.`';
  }
  if ((key || env) && !(SECRET_KEY.test(key) && ENV_NAME.test(env))) {
    return 'give both a key and an environment variable name (e.g. password, DB_PASSWORD)';
  }
  const tag = key ? `secret:${name}:${key}:${env}` : `secret:${name}`;
  setTags(cell, [...getTags(cell), tag]);
  return null;
}

export function removeTag(cell: ICellModel, tag: string): void {
  setTags(
    cell,
    getTags(cell).filter(t => t !== tag)
  );
}

/** Makes `cell` part of the task above it: drops its task tag (and `skip`). */
export function joinTaskAbove(cell: ICellModel): void {
  setTags(
    cell,
    getTags(cell).filter(t => t !== 'skip' && !TASK_PREFIXES.some(p => t.startsWith(p)))
  );
}
