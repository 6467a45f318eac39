// Package loadgen puts measured load on any SMTP or POP3 server by
// address, so the same scenarios measure buzon, Postfix or Dovecot side by
// side. Each scenario returns a Result; Table and JSON report them.
package loadgen

import "time"

// Result is what one scenario run measured.
type Result struct {
	// Scenario is "smtp", "pop3", "pop3-list", "conns" or "disk".
	Scenario string `json:"scenario"`
	// Name labels the table row, e.g. "smtp 5000x4KiB c=20".
	Name string `json:"name"`
	// Params are the scenario's parameters, for the record.
	Params map[string]any `json:"params"`
	// Ops counts completed operations: messages accepted (smtp), messages
	// retrieved (pop3), sessions (pop3-list), connections greeted
	// (conns), durable writes (disk).
	Ops int64 `json:"ops"`
	// Bytes is the message payload moved (not protocol overhead).
	Bytes   int64         `json:"bytes"`
	Elapsed time.Duration `json:"elapsed_ns"`
	// OpsPerSec and MBPerSec are Ops and Bytes (10^6 B) over Elapsed.
	OpsPerSec float64 `json:"ops_per_sec"`
	MBPerSec  float64 `json:"mb_per_sec"`
	// Latency is per operation: one SMTP transaction (MAIL to the reply
	// after DATA), one RETR, one pop3-list session, one disk write.
	Latency Latency `json:"latency"`
	// Samples are the per-operation latencies behind Latency, sorted. They
	// stay out of the JSON (thousands of numbers per row) but let Merge
	// compute the percentiles of several rounds exactly.
	Samples []time.Duration `json:"-"`
	// Errors counts failures by reply code ("451", "-ERR") or by kind
	// ("dial", "timeout", "eof").
	Errors map[string]int64 `json:"errors,omitempty"`
	// Server is the server's memory while the scenario ran, when its PID
	// is known.
	Server *Memory `json:"server,omitempty"`
	// Extra holds scenario-specific figures (conns: "greeted",
	// "rss_per_conn_kib"; disk: "workers").
	Extra map[string]any `json:"extra,omitempty"`
}

// Latency holds percentiles of per-operation latency.
type Latency struct {
	P50 time.Duration `json:"p50_ns"`
	P90 time.Duration `json:"p90_ns"`
	P99 time.Duration `json:"p99_ns"`
	Max time.Duration `json:"max_ns"`
}

// Memory is a server process's resident memory in KiB, read from
// /proc/PID/status: before the scenario, its peak during it, and after.
type Memory struct {
	PID       int   `json:"pid"`
	BeforeKiB int64 `json:"rss_before_kib"`
	PeakKiB   int64 `json:"rss_peak_kib"`
	AfterKiB  int64 `json:"rss_after_kib"`
}
