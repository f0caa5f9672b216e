/** Upper bounds of the latency histogram, in seconds (Prometheus' usual spread, up to a minute). */
const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

interface Histogram {
  readonly counts: number[];
  sum: number;
  count: number;
}

function label(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/**
 * Request counts and latencies in the Prometheus text format. Labelled by route template (not
 * the URL), so ids and junk paths cannot grow the series without bound.
 */
export class Metrics {
  private readonly requests = new Map<string, number>();
  private readonly latency = new Map<string, Histogram>();

  observe(method: string, route: string, status: number, seconds: number): void {
    const key = `method="${label(method)}",route="${label(route)}"`;
    const counted = `${key},status="${status}"`;
    this.requests.set(counted, (this.requests.get(counted) ?? 0) + 1);
    let h = this.latency.get(key);
    if (!h) {
      h = { counts: BUCKETS.map(() => 0), sum: 0, count: 0 };
      this.latency.set(key, h);
    }
    for (const [i, le] of BUCKETS.entries()) if (seconds <= le) h.counts[i]!++;
    h.sum += seconds;
    h.count++;
  }

  /** The exposition text, with current values of the given gauges (name -> [help, value]). */
  render(gauges: Readonly<Record<string, readonly [string, number]>>): string {
    const lines = ['# HELP headswap_http_requests_total HTTP requests answered, by method, route and status.', '# TYPE headswap_http_requests_total counter'];
    for (const [labels, n] of this.requests) lines.push(`headswap_http_requests_total{${labels}} ${n}`);
    lines.push('# HELP headswap_http_request_duration_seconds Time to answer a request.', '# TYPE headswap_http_request_duration_seconds histogram');
    for (const [labels, h] of this.latency) {
      for (const [i, le] of BUCKETS.entries()) lines.push(`headswap_http_request_duration_seconds_bucket{${labels},le="${le}"} ${h.counts[i]}`);
      lines.push(`headswap_http_request_duration_seconds_bucket{${labels},le="+Inf"} ${h.count}`);
      lines.push(`headswap_http_request_duration_seconds_sum{${labels}} ${h.sum}`);
      lines.push(`headswap_http_request_duration_seconds_count{${labels}} ${h.count}`);
    }
    for (const [name, [help, value]] of Object.entries(gauges)) lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, `${name} ${value}`);
    return `${lines.join('\n')}\n`;
  }
}
