import type { ClassifyResponse, ErrorBody, JobProgress, JobView, ModelDetail, ModelSummary } from '../../src/server/api-types.js';

/** The server's one-line `{error}` for a failed request, or the status when there is none. */
async function failure(res: Response): Promise<Error> {
  try {
    const body = (await res.json()) as Partial<ErrorBody>;
    if (typeof body.error === 'string') return new Error(body.error);
  } catch {
    // Not JSON: fall back to the status line.
  }
  return new Error(`${res.status} ${res.statusText}`);
}

async function json<T>(input: string, init?: RequestInit): Promise<T> {
  const res = await fetch(input, init);
  if (!res.ok) throw await failure(res);
  return (await res.json()) as T;
}

export async function listModels(): Promise<ModelSummary[]> {
  return (await json<{ models: ModelSummary[] }>('/v1/models')).models;
}

export function getModel(id: string): Promise<ModelDetail> {
  return json<ModelDetail>(`/v1/models/${encodeURIComponent(id)}`);
}

export async function modelBytes(model: ModelSummary): Promise<Uint8Array> {
  const res = await fetch(model.links.model);
  if (!res.ok) throw await failure(res);
  return new Uint8Array(await res.arrayBuffer());
}

/** One image as a multipart file, so the server's answer (and any refusal) names it. */
export function classifyOnServer(model: ModelSummary, image: File, top: number): Promise<ClassifyResponse> {
  const form = new FormData();
  form.append('image', image, image.name);
  return json<ClassifyResponse>(`${model.links.classify}?top=${top}`, { method: 'POST', body: form });
}

/** The class activation map of one photo (the predicted class, or `className`) as a PNG overlay. */
export async function explainOnServer(model: ModelSummary, image: File, className?: string): Promise<{ png: Blob; label: string; probability: number }> {
  const form = new FormData();
  form.append('image', image, image.name);
  const query = className === undefined ? '' : `?class=${encodeURIComponent(className)}`;
  const res = await fetch(`/v1/models/${encodeURIComponent(model.id)}/explain${query}`, { method: 'POST', body: form });
  if (!res.ok) throw await failure(res);
  return { png: await res.blob(), label: res.headers.get('X-Headswap-Class') ?? '', probability: Number(res.headers.get('X-Headswap-Probability')) };
}

export function submitJob(form: FormData): Promise<JobView> {
  return json<JobView>('/v1/jobs', { method: 'POST', body: form });
}

export function getJob(id: string): Promise<JobView> {
  return json<JobView>(`/v1/jobs/${encodeURIComponent(id)}`);
}

export async function listJobs(): Promise<JobView[]> {
  return (await json<{ jobs: JobView[] }>('/v1/jobs')).jobs;
}

/** Follows a job's progress stream until the job is done or failed; resolves with the final job. */
export function followJob(job: JobView, on: { job: (j: JobView) => void; progress: (p: JobProgress) => void }): Promise<JobView> {
  return new Promise((resolve, reject) => {
    const source = new EventSource(job.links.events);
    source.addEventListener('job', (e) => {
      const j = JSON.parse((e as MessageEvent<string>).data) as JobView;
      on.job(j);
      if (j.status === 'done' || j.status === 'failed') {
        source.close();
        resolve(j);
      }
    });
    source.addEventListener('progress', (e) => on.progress(JSON.parse((e as MessageEvent<string>).data) as JobProgress));
    source.onerror = () => {
      // The stream ends after the last event; only an error before that is a failure.
      if (source.readyState === EventSource.CLOSED) reject(new Error('lost the connection to the server'));
    };
  });
}
