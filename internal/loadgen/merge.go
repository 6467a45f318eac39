package loadgen

import (
	"reflect"
	"time"
)

// Merge combines rounds of one scenario into one Result named name, for
// loads measured in several rounds (interleaved with another load, so both
// see the same conditions of a shared disk). Ops, Bytes and Elapsed are
// summed, so the rates are the work over the time spent measuring it;
// latency percentiles come from every round's Samples; errors are added up;
// the server's memory is the first round's before, the highest peak and the
// last round's after.
//
// Params and Extra keep what every round agrees on; a key whose value
// differs between rounds holds the per-round values in a slice. Extra also
// gets "rounds" and "round_ops_per_sec", so the spread between rounds stays
// visible next to the merged rate.
func Merge(name string, rs ...Result) Result {
	out := Result{Name: name}
	if len(rs) == 0 {
		return out
	}
	out.Scenario = rs[0].Scenario
	var samples []time.Duration
	perRound := make([]float64, len(rs))
	for i, r := range rs {
		out.Ops += r.Ops
		out.Bytes += r.Bytes
		out.Elapsed += r.Elapsed
		samples = append(samples, r.Samples...)
		perRound[i] = r.OpsPerSec
		for k, v := range r.Errors {
			if out.Errors == nil {
				out.Errors = map[string]int64{}
			}
			out.Errors[k] += v
		}
		if m := r.Server; m != nil {
			if out.Server == nil {
				out.Server = &Memory{PID: m.PID, BeforeKiB: m.BeforeKiB}
			}
			out.Server.PeakKiB = max(out.Server.PeakKiB, m.PeakKiB)
			out.Server.AfterKiB = m.AfterKiB
		}
	}
	if s := out.Elapsed.Seconds(); s > 0 {
		out.OpsPerSec = float64(out.Ops) / s
		out.MBPerSec = float64(out.Bytes) / 1e6 / s
	}
	out.Latency = percentiles(samples) // sorts samples
	out.Samples = samples

	out.Params = mergeMaps(rs, func(r Result) map[string]any { return r.Params })
	out.Params["rounds"] = len(rs)
	out.Extra = mergeMaps(rs, func(r Result) map[string]any { return r.Extra })
	out.Extra["rounds"] = len(rs)
	out.Extra["round_ops_per_sec"] = perRound
	return out
}

// mergeMaps unites the maps of the rounds: a value every round has alike
// is kept as it is, any other becomes the slice of per-round values (nil
// where a round lacks the key).
func mergeMaps(rs []Result, get func(Result) map[string]any) map[string]any {
	keys := map[string]bool{}
	for _, r := range rs {
		for k := range get(r) {
			keys[k] = true
		}
	}
	out := make(map[string]any, len(keys)+2)
	for k := range keys {
		vals := make([]any, len(rs))
		same := true
		for i, r := range rs {
			v, ok := get(r)[k]
			if !ok {
				same = false
			}
			vals[i] = v
			if i > 0 && !reflect.DeepEqual(v, vals[0]) {
				same = false
			}
		}
		if same {
			out[k] = vals[0]
		} else {
			out[k] = vals
		}
	}
	return out
}
