package loadgen

import (
	"reflect"
	"slices"
	"testing"
	"time"
)

func TestMerge(t *testing.T) {
	msRange := func(from, to int) []time.Duration {
		var d []time.Duration
		for i := from; i <= to; i++ {
			d = append(d, time.Duration(i)*time.Millisecond)
		}
		return d
	}
	tests := []struct {
		name   string
		rounds []Result
		want   Result // Name, Scenario, Ops, Bytes, Elapsed, rates, Latency, Errors, Server
		params map[string]any
		extra  map[string]any
	}{
		{
			name: "no rounds",
			want: Result{Name: "m"},
		},
		{
			name: "one round keeps its figures",
			rounds: []Result{{Scenario: "disk", Ops: 10, Bytes: 40960, Elapsed: time.Second, OpsPerSec: 10,
				Samples: msRange(1, 10), Params: map[string]any{"ops": 10}, Extra: map[string]any{"workers": 20}}},
			want: Result{Name: "m", Scenario: "disk", Ops: 10, Bytes: 40960, Elapsed: time.Second, OpsPerSec: 10, MBPerSec: 0.04096,
				Latency: Latency{P50: 5e6, P90: 9e6, P99: 10e6, Max: 10e6}},
			params: map[string]any{"ops": 10, "rounds": 1},
			extra:  map[string]any{"workers": 20, "rounds": 1, "round_ops_per_sec": []float64{10}},
		},
		{
			name: "rates are the work over the summed time, percentiles over all samples",
			rounds: []Result{
				{Scenario: "smtp", Ops: 100, Bytes: 100e4, Elapsed: time.Second, OpsPerSec: 100, Samples: msRange(11, 20),
					Params: map[string]any{"conns": 20, "messages": 100}, Extra: map[string]any{"k": "a"}},
				{Scenario: "smtp", Ops: 300, Bytes: 300e4, Elapsed: time.Second / 2, OpsPerSec: 600, Samples: msRange(1, 10),
					Params: map[string]any{"conns": 20, "messages": 300}},
			},
			want: Result{Name: "m", Scenario: "smtp", Ops: 400, Bytes: 400e4, Elapsed: 1500 * time.Millisecond,
				OpsPerSec: 400 / 1.5, MBPerSec: 4 / 1.5, Latency: Latency{P50: 10e6, P90: 18e6, P99: 20e6, Max: 20e6}},
			params: map[string]any{"conns": 20, "messages": []any{100, 300}, "rounds": 2},
			extra:  map[string]any{"k": []any{"a", nil}, "rounds": 2, "round_ops_per_sec": []float64{100, 600}},
		},
		{
			name: "errors add up, memory spans the rounds",
			rounds: []Result{
				{Ops: 1, Elapsed: time.Second, OpsPerSec: 1, Errors: map[string]int64{"451": 2},
					Server: &Memory{PID: 7, BeforeKiB: 100, PeakKiB: 300, AfterKiB: 200}},
				{Ops: 1, Elapsed: time.Second, OpsPerSec: 1},
				{Ops: 1, Elapsed: time.Second, OpsPerSec: 1, Errors: map[string]int64{"451": 1, "eof": 4},
					Server: &Memory{PID: 7, BeforeKiB: 200, PeakKiB: 250, AfterKiB: 220}},
			},
			want: Result{Name: "m", Ops: 3, Elapsed: 3 * time.Second, OpsPerSec: 1,
				Errors: map[string]int64{"451": 3, "eof": 4}, Server: &Memory{PID: 7, BeforeKiB: 100, PeakKiB: 300, AfterKiB: 220}},
			params: map[string]any{"rounds": 3},
			extra:  map[string]any{"rounds": 3, "round_ops_per_sec": []float64{1, 1, 1}},
		},
		{
			name:   "no memory, no errors",
			rounds: []Result{{Ops: 2, Elapsed: time.Second, OpsPerSec: 2}, {}},
			want:   Result{Name: "m", Ops: 2, Elapsed: time.Second, OpsPerSec: 2},
			params: map[string]any{"rounds": 2},
			extra:  map[string]any{"rounds": 2, "round_ops_per_sec": []float64{2, 0}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Merge("m", tt.rounds...)
			if got.Name != tt.want.Name || got.Scenario != tt.want.Scenario || got.Ops != tt.want.Ops ||
				got.Bytes != tt.want.Bytes || got.Elapsed != tt.want.Elapsed || got.Latency != tt.want.Latency {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
			if !near(got.OpsPerSec, tt.want.OpsPerSec) || !near(got.MBPerSec, tt.want.MBPerSec) {
				t.Errorf("rates %v ops/s %v MB/s, want %v and %v", got.OpsPerSec, got.MBPerSec, tt.want.OpsPerSec, tt.want.MBPerSec)
			}
			if !reflect.DeepEqual(got.Errors, tt.want.Errors) {
				t.Errorf("errors %v, want %v", got.Errors, tt.want.Errors)
			}
			if !reflect.DeepEqual(got.Server, tt.want.Server) {
				t.Errorf("server %+v, want %+v", got.Server, tt.want.Server)
			}
			if !reflect.DeepEqual(got.Params, tt.params) {
				t.Errorf("params %#v, want %#v", got.Params, tt.params)
			}
			if !reflect.DeepEqual(got.Extra, tt.extra) {
				t.Errorf("extra %#v, want %#v", got.Extra, tt.extra)
			}
			n := 0
			for _, r := range tt.rounds {
				n += len(r.Samples)
			}
			if len(got.Samples) != n || !slices.IsSorted(got.Samples) {
				t.Errorf("%d samples (sorted %v), want %d sorted", len(got.Samples), slices.IsSorted(got.Samples), n)
			}
		})
	}
}

func TestMergeLeavesRoundsAlone(t *testing.T) {
	a := Result{Ops: 2, Elapsed: time.Second, Samples: []time.Duration{5, 9}, Server: &Memory{PeakKiB: 1},
		Errors: map[string]int64{"eof": 1}, Extra: map[string]any{"x": 1}}
	b := Result{Ops: 2, Elapsed: time.Second, Samples: []time.Duration{1, 3}, Server: &Memory{PeakKiB: 2},
		Errors: map[string]int64{"eof": 1}, Extra: map[string]any{"x": 1}}
	Merge("m", a, b)
	if !slices.Equal(a.Samples, []time.Duration{5, 9}) || a.Server.PeakKiB != 1 || a.Errors["eof"] != 1 || len(a.Extra) != 1 {
		t.Errorf("Merge changed its first round: %+v", a)
	}
}

func near(a, b float64) bool {
	d := a - b
	return d < 1e-9 && d > -1e-9
}
