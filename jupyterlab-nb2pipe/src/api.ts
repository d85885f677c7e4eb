import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** A diagnostic as `nb2pipe --format json` prints it. */
export interface IDiagnostic {
  code: string;
  severity: string;
  message: string;
  location?: {
    notebook?: string;
    cell?: number;
    line?: number;
    column?: number;
    cell_first_line?: string;
    /** 1-based, markdown cells counted: the number the text output says. */
    cell_number?: number;
    code_cell?: number;
    /** The cell's `In [n]` prompt. */
    execution_count?: number;
    cell_id?: string;
    /** The line the diagnostic points at. */
    source_line?: string;
    tag?: string;
  };
  help?: string;
}

export interface ITask {
  name: string;
  k8s_name?: string;
  cells: number[];
  inputs: { name: string; from: string }[];
  outputs: string[];
  parameters: string[];
  imports?: string[];
  requirements: { line: string; source?: string }[];
  metrics?: boolean;
  settings: Record<string, any>;
  image?: { reference?: string; prebuilt?: boolean };
}

export interface IEdge {
  from: string;
  to: string;
  values: string[];
  explicit: boolean;
}

export interface IPlan {
  pipeline: string;
  notebook: string;
  tasks: ITask[];
  edges: IEdge[];
  parameters: { name: string; default?: unknown }[];
  settings: Record<string, any>;
}

export interface IResult {
  ok: boolean;
  exit_code?: number;
  error?: string;
  plan?: IPlan | null;
  diagnostics?: IDiagnostic[];
  bundle?: string;
  bundle_path?: string | null;
  files?: string[];
}

export interface IConvertOptions {
  target: string;
  profile: string;
  out: string;
}

/** POST /nb2pipe/<command>; errors come back as `{ok: false, error}`, never a throw. */
export async function call(
  command: string,
  body: Record<string, unknown>
): Promise<IResult> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'nb2pipe', command);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(
      url,
      { method: 'POST', body: JSON.stringify(body) },
      settings
    );
  } catch (e) {
    return { ok: false, error: `cannot reach the server: ${e}` };
  }
  let doc: any = null;
  try {
    doc = await response.json();
  } catch {
    doc = null;
  }
  if (!doc || typeof doc !== 'object') {
    return { ok: false, error: `the server answered ${response.status} without JSON` };
  }
  if (!response.ok && !doc.error) {
    doc.error = `the server answered ${response.status}`;
  }
  if (!response.ok) {
    doc.ok = false;
  }
  return doc as IResult;
}

/** A task in a run, as POST /nb2pipe/runs reports it. */
export interface IRunTask {
  name: string;
  /** waiting, running, succeeded, failed, skipped, cached, ...: an open set. */
  state: string;
  log_tail?: string | null;
  error?: { cell?: number; line?: number; message?: string } | null;
}

export interface IRuns extends IResult {
  active?: { running: boolean; exit_code: number | null; run_id: string | null; tasks: IRunTask[]; stderr_tail: string } | null;
  last?: { run_id: string; pipeline: string; tasks: IRunTask[] } | null;
}
